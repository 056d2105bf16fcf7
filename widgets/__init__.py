"""Reusable widgets: they render snapshots and post intent messages."""

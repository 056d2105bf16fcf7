"""Textual app, screens and the CLI entry points."""

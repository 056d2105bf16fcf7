"""Screens of netjail-tui."""

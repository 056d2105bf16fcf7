"""Firewall layer: netjail-owned chains behind one interface."""

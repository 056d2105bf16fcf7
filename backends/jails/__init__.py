"""Jails: the registry, the rules and marks they need, and the reconciliation that keeps them true."""

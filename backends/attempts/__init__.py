"""What jailed processes tried to reach: the kernel's copies of dropped packets (NFLOG), decoded,
aggregated per jail and kept in a bounded SQLite log (docs/attempts.md)."""

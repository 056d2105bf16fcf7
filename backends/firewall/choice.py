"""The backend a host gets when nobody chose one (no --backend, no NETJAIL_BACKEND, no live
jails recorded): nftables where the kernel has nf_tables and the xtables-legacy tables hold
nothing but netjail's, else iptables (docs/backends.md says why).

`decide` is the pure rule, from facts to (backend name, reason); `probe` reads the facts from
this network namespace (nf_tables_probe.py, legacy_scan.py: ~0.1 ms and one getsockopt pair per
legacy table, no library loaded, nothing changed). It runs in every command that picks a backend
with nothing recorded, so nothing here imports typing or builds a dataclass.
"""

from __future__ import annotations

from netjail.backends.firewall.legacy_scan import LegacyScan

IPTABLES, NFTABLES = "iptables", "nftables"


class HostFacts:
    """What the choice depends on. `nf_tables`: True, False, or None when it could not be told;
    `nft_jails`: jails whose chains `table inet netjail` holds; `installed`: the backends whose
    module this netjail has."""

    __slots__ = ("installed", "legacy", "nf_tables", "nf_tables_why", "nft_jails")

    def __init__(
        self,
        *,
        nf_tables: bool | None,
        nf_tables_why: str,
        legacy: LegacyScan,
        installed: frozenset[str],
        nft_jails: frozenset[str] = frozenset(),
    ) -> None:
        self.nf_tables, self.nf_tables_why, self.nft_jails = nf_tables, nf_tables_why, nft_jails
        self.legacy, self.installed = legacy, installed

    def __repr__(self) -> str:
        shown = f"nf_tables={self.nf_tables!r}, legacy={self.legacy!r}, installed={sorted(self.installed)!r}"
        return f"HostFacts({shown})"


def decide(facts: HostFacts) -> tuple[str, str]:
    """(backend name, why), in the order the reasons weigh."""
    legacy = facts.legacy
    if facts.nf_tables is None:
        return IPTABLES, f"cannot tell whether the kernel has nf_tables ({facts.nf_tables_why})"
    if not facts.nf_tables:
        return IPTABLES, f"the kernel has no nf_tables ({facts.nf_tables_why})"
    if legacy.jails:
        # the state file was lost, the jails were not: they are reconciled where they are
        names = ", ".join(sorted(legacy.jails))
        return IPTABLES, f"xtables-legacy holds netjail chains of jails {names}"
    if facts.nft_jails and NFTABLES in facts.installed:  # the same, made by the nftables backend
        return NFTABLES, f"nf_tables holds netjail chains of jails {', '.join(sorted(facts.nft_jails))}"
    if legacy.foreign:
        return IPTABLES, f"xtables-legacy holds foreign rules ({'; '.join(legacy.foreign)})"
    if legacy.unread:
        return IPTABLES, f"cannot read the xtables-legacy tables ({legacy.unread})"
    if NFTABLES not in facts.installed:  # the host's facts first: they hold whatever is installed
        return IPTABLES, "nftables would do here, but this netjail has no nftables backend module"
    return NFTABLES, "the kernel has nf_tables and xtables-legacy holds no foreign rules"


def probe(installed: frozenset[str]) -> HostFacts:
    from netjail.backends.firewall import legacy_scan, nf_tables_probe

    found, why = nf_tables_probe.probe()
    # the tables weigh only where the kernel has nf_tables
    legacy = legacy_scan.scan() if found else LegacyScan()
    nft_jails = nf_tables_probe.netjail_jails() if found else frozenset()
    return HostFacts(
        nf_tables=found, nf_tables_why=why, legacy=legacy, installed=installed, nft_jails=nft_jails
    )

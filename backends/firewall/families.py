"""Which address families netjail can filter on this kernel, learned once per process.

A kernel booted with `ipv6.disable=1` has no IPv6 at all: socket(AF_INET6, ...) fails with
EAFNOSUPPORT, and so does libiptc's own raw socket. A hardened kernel may have IPv6 but no
ip6_tables (or no ip6table_filter): IPv6 traffic flows, and netjail cannot filter it. Only the
second case leaves a hole, so the two are told apart:

- `kernel`: a datagram socket of the family opens (the family exists at all);
- `filterable`: the family's xtables-legacy filter table opens through libiptc, exactly as every
  firewall change opens it (python-iptables' import has already tried modprobe by then). None
  when that cannot be known without privilege: the real change then fails with exit 3.

The firewall writes only families it can filter; `coverage_note` is the one line block and run
print when that is not both.
"""

from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from netjail.backends.errors import InsufficientPrivilege, UnsupportedEnvironment
from netjail.backends.firewall.base import JailRules, Match

LABEL = {"inet": "IPv4", "inet6": "IPv6"}
_AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}
_NO_FAMILY = {errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT}


@dataclass(frozen=True, slots=True)
class FamilySupport:
    family: str  # "inet" | "inet6"
    kernel: bool  # the kernel has the family
    filterable: bool | None  # its filter table opens (None: unknown without privilege)
    reason: str = ""  # why not, when not


def probe(family: str) -> FamilySupport:
    """Ask the kernel about one family (costs one libiptc table read when the family exists)."""
    try:
        socket.socket(_AF[family], socket.SOCK_DGRAM).close()
    except OSError as exc:
        if exc.errno in _NO_FAMILY:
            return FamilySupport(family, False, False, f"the kernel has no {LABEL[family]} ({exc.strerror})")
        # anything else (EMFILE, a seccomp EPERM ...) says nothing about the kernel: the table decides
    from netjail.backends.firewall.libiptc import Table  # loads python-iptables

    try:
        Table(family).close()
    except UnsupportedEnvironment as exc:
        return FamilySupport(family, True, False, str(exc))
    except InsufficientPrivilege as exc:
        return FamilySupport(family, True, None, str(exc))
    return FamilySupport(family, True, True)


@functools.cache
def support() -> tuple[FamilySupport, ...]:
    """Both families, probed on first use; the kernel's answer does not change while we run."""
    return probe("inet"), probe("inet6")


def usable(found: Iterable[FamilySupport]) -> tuple[str, ...]:
    """Families to write rules in: all but those known unfilterable."""
    return tuple(s.family for s in found if s.filterable is not False)


def coverage_note(found: Iterable[FamilySupport]) -> str | None:
    """One line when netjail filters only one family (None: both, or unknown yet)."""
    found = tuple(found)
    covered = [s for s in found if s.filterable is not False]
    missing = [s for s in found if s.filterable is False]
    if not missing or not covered:
        return None  # both covered; or neither, which the firewall refuses with its own error
    only = " and ".join(LABEL[s.family] for s in covered)
    for s in missing:
        if s.kernel:  # the family carries traffic netjail cannot see
            return (
                f"only {only} is filtered: {s.reason}; jailed processes can still reach "
                f"{LABEL[s.family]} addresses"
            )
    return f"only {only} is filtered ({'; '.join(s.reason for s in missing)})"


def coverage_text(found: Iterable[FamilySupport]) -> str:
    """What netjail covers, for doctor: "IPv4, IPv6" or "IPv4 (IPv6: why not)"."""
    parts = []
    for s in found:
        if s.filterable is None:
            parts.append(f"{LABEL[s.family]} (unknown: {s.reason})")
        elif s.filterable:
            parts.append(LABEL[s.family])
        else:
            parts.append(f"not {LABEL[s.family]} ({s.reason})")
    return ", ".join(parts)


def only(rules: JailRules, families: Collection[str]) -> JailRules:
    """The rules without matches of other families (pure)."""

    def keep(matches: tuple[Match, ...]) -> tuple[Match, ...]:
        return tuple(m for m in matches if m.family in families)

    return replace(
        rules,
        out_selectors=keep(rules.out_selectors),
        in_selectors=keep(rules.in_selectors),
        fwd_selectors=keep(rules.fwd_selectors),
        out_allow=keep(rules.out_allow),
        in_allow=keep(rules.in_allow),
        fwd_allow=keep(rules.fwd_allow),
    )

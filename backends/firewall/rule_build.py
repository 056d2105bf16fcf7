"""Encode a canonical `Match` + target into a rule entry, with python-iptables doing the xtables work
(extension lookup, revision the kernel supports, option parsing).

Entries are cached: a jail re-synced with the same rules costs no python-iptables calls, and
building one costs ~0.3 ms (three matches), which adds up for hundreds of socket selectors.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import functools
import struct
from typing import Any

from netjail.backends.attempts import prefix
from netjail.backends.errors import OperationFailed, UnsupportedEnvironment
from netjail.backends.firewall import log_rule
from netjail.backends.firewall.base import Match
from netjail.backends.firewall.ipsets import Ipsets
from netjail.backends.firewall.lanes import ALL_BITS, CLEAR_MARK
from netjail.backends.firewall.libiptc import load_iptc
from netjail.backends.firewall.log_rule import LOG_TARGET
from netjail.backends.firewall.xt_layout import LAYOUTS, XT_EXTENSION_MAXNAMELEN
from netjail.backends.system.stderr_capture import stderr_captured


def _new_rule(family: str) -> Any:
    iptc = load_iptc()
    return iptc.Rule6() if family == "inet6" else iptc.Rule()


_LOADED: set[str] = set()  # extensions libxtables has loaded (and said what it had to say about)


def _create_match(rule: Any, name: str) -> Any:
    if name in _LOADED:
        # no fd 2 redirection after the first load: a TUI draws on fd 2 from another thread
        return rule.create_match(name)
    with stderr_captured() as said:
        try:
            match = rule.create_match(name)
        except Exception as exc:  # XTablesError: libxt_<name>.so missing or unusable
            noise = said().strip()
            raise UnsupportedEnvironment(
                f"iptables extension '{name}' unavailable: {exc}" + (f" ({noise})" if noise else "")
            ) from None
    _LOADED.add(name)
    return match


def set_index(name: str) -> int:
    with Ipsets() as sets:
        index = sets.index_of(name)
    if index is None:
        raise OperationFailed(f"ipset {name} does not exist (create it before rules using it)")
    return index


_NFLOG_INFO = struct.Struct("=IHHHH64s")  # xt_nflog_info: len, group, threshold, flags, pad, prefix
_XT_ALIGN = 8


def _nflog_target(group: int, text: str) -> bytes:
    """An xt_entry_target for NFLOG revision 0: copy SNAPLEN bytes to `group` with prefix `text`
    (threshold 0: the group's own queue threshold, set by the collector, applies)."""
    data = _NFLOG_INFO.pack(prefix.SNAPLEN, group, 0, log_rule.XT_NFLOG_F_COPY_LEN, 0, text.encode()[:63])
    data += b"\0" * (-len(data) % _XT_ALIGN)
    size = 32 + len(data)
    return struct.pack("=H29sB", size, b"NFLOG", 0) + data


def warm_up() -> None:
    """Load every extension netjail uses now, before a UI owns the terminal: the first load is
    the one whose warnings must be kept off the screen."""
    for family in ("inet", "inet6"):
        for name in ("tcp", "udp", "cgroup", "owner", "mark", "socket", "comment") + (
            ("icmp6",) if family == "inet6" else ()
        ):
            with contextlib.suppress(UnsupportedEnvironment):
                _create_match(_new_rule(family), name)


VERDICTS = ("ACCEPT", "DROP", "RETURN")


def build_entry(match: Match, target: str, comment: str | None = None) -> bytes:
    """The entry bytes for `<match> [-m comment] -j <target>`; `match` must be canonical and
    `target` a verdict or a chain name (libiptc resolves the name when the entry is added)."""
    # the entry holds the set's index, not its name: a set destroyed and made again under the
    # same name may get another index, so the index is part of what the cached entry depends on
    index = None if match.match_set is None else set_index(match.match_set)
    if target in VERDICTS or target == CLEAR_MARK or target.startswith(LOG_TARGET):
        return _build(match, target, comment, index)
    # A jump is a standard target carrying the chain's name. python-iptables would look the name
    # up in its own process-wide table handles, which do not know chains created in ours.
    entry = bytearray(_build(match, "RETURN", comment, index))
    name = target.encode()
    if not 0 < len(name) < XT_EXTENSION_MAXNAMELEN:
        raise OperationFailed(f"bad chain name {target!r}")
    (target_offset,) = struct.unpack_from("=H", entry, LAYOUTS[match.family].target_offset)
    entry[target_offset + 2 : target_offset + 2 + XT_EXTENSION_MAXNAMELEN] = name.ljust(
        XT_EXTENSION_MAXNAMELEN, b"\0"
    )
    return bytes(entry)


@functools.lru_cache(maxsize=8192)
def _build(match: Match, target: str, comment: str | None, set_index: int | None = None) -> bytes:
    if target.startswith(LOG_TARGET):
        # The NFLOG target is written here, not by python-iptables: its NFLOG support corrupts
        # the heap (a SIGSEGV a few allocations later, and "--nflog-range" warnings). The entry
        # is the matches of a RETURN rule built as usual, then this target (docs/attempts.md).
        matches = _build(match, "RETURN", comment, set_index)
        at = LAYOUTS[match.family].target_offset
        (target_offset,) = struct.unpack_from("=H", matches, at)
        entry = bytearray(matches[:target_offset] + _nflog_target(*log_rule.split(target)))
        struct.pack_into("=HH", entry, at, target_offset, len(entry))
        return bytes(entry)
    try:
        rule = _new_rule(match.family)
        if match.src:
            rule.src = match.src
        if match.dst:
            rule.dst = match.dst
        if match.in_iface:
            rule.in_interface = match.in_iface
        if match.out_iface:
            rule.out_interface = match.out_iface
        if match.proto:
            rule.protocol = match.proto
            if match.icmp6_type is not None:
                _create_match(rule, "icmp6").icmpv6_type = str(match.icmp6_type)
            if match.sport is not None or match.dport is not None:
                m = _create_match(rule, match.proto)
                if match.sport is not None:
                    m.sport = str(match.sport)
                if match.dport is not None:
                    m.dport = str(match.dport)
        if match.cgroup is not None:
            _create_match(rule, "cgroup").path = match.cgroup
        if match.uid_owner is not None or match.gid_owner is not None:
            m = _create_match(rule, "owner")
            if match.uid_owner is not None:
                m.uid_owner = str(match.uid_owner)
            if match.gid_owner is not None:
                m.gid_owner = str(match.gid_owner)
        if match.socket_mark:  # first: the mark test after it sees the socket's mark
            m = _create_match(rule, "socket")
            m.nowildcard = ""
            m.restore_skmark = ""
        if match.mark is not None:
            _create_match(rule, "mark").mark = f"{match.mark:#x}/{match.mark_mask:#x}"
        if match.match_set is not None:  # libxt_set looks the index up itself
            _create_match(rule, "set").match_set = [match.match_set, match.set_flags]
        if match.log_limit:
            m = _create_match(rule, "limit")
            m.limit = prefix.RATE
            m.limit_burst = str(prefix.BURST)
        if comment is not None:
            _create_match(rule, "comment").comment = comment
        try:
            if target.startswith(LOG_TARGET):
                group, text = log_rule.split(target)
                t = rule.create_target("NFLOG")
                t.nflog_group = str(group)
                t.nflog_prefix = text
                t.nflog_size = str(prefix.SNAPLEN)
            else:
                t = rule.create_target(target)
            if target == CLEAR_MARK:  # the bits its match says are not set: all, or netjail's
                bits = ALL_BITS if match.mark_mask is None else ALL_BITS & ~match.mark_mask
                t.set_xmark = f"0x0/{bits:#x}"
        except Exception as exc:  # XTablesError: libxt_standard.so missing
            raise UnsupportedEnvironment(f"iptables target '{target}' unavailable: {exc}") from None
        rule.final_check()
        buf = rule.rule
    except UnsupportedEnvironment:
        raise
    except Exception as exc:  # python-iptables validates options itself (XTablesError, ValueError)
        raise OperationFailed(f"cannot encode rule {match} -j {target}: {exc}") from None
    return ct.string_at(ct.addressof(buf), ct.sizeof(buf))

"""netjail's masquerade rules in the nat table: how a jail's network namespace reaches out through
its veth, with the source address rewritten to the host's on the way out.

Shape, per family (iptables-legacy nat table):

    POSTROUTING -> (rule 1) -m comment --comment netjail -j NETJAIL-NAT
    NETJAIL-NAT:  -s <netns prefix> [-o <iface>] -m comment --comment netjail:<jail> -j MASQUERADE

Same discipline as the filter backend (iptc_backend.py): netjail owns NETJAIL-NAT and one jump
to it, and touches nothing else; each change is planned on a fresh libiptc copy under the
xtables lock and committed in one table replace per family, re-planned when another writer
committed in between (EAGAIN); both families are staged before either commits, and a family
already committed is put back when the other one fails. The chain and its jump exist only while
some jail has a rule, so the nat table is left as netjail found it.

python-iptables resolves the MASQUERADE extension for one address family per process only
(libxt_MASQUERADE.so registers the family in use when first loaded), so the target is encoded
here: its payload is fixed ("the outgoing interface's address, any port").
"""

from __future__ import annotations

import errno
import ipaddress
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence

from netjail.backends.errors import NetjailError, UnsupportedEnvironment
from netjail.backends.firewall.base import Match
from netjail.backends.firewall.libiptc import CommitConflict, Table, _library, translate
from netjail.backends.firewall.matches import FAMILIES
from netjail.backends.firewall.plan import Append, Current, Delete, Edit, Insert, RuleKey, edit_builtin
from netjail.backends.firewall.retry import commit_with_retries
from netjail.backends.firewall.rule_build import build_entry
from netjail.backends.firewall.xt_layout import LAYOUTS, XT_EXTENSION_MAXNAMELEN, decode_entry
from netjail.backends.firewall.xtables_lock import xtables_lock
from netjail.backends.jails.names import check_jail_name

NAT_CHAIN = "NETJAIL-NAT"
BUILTIN = "POSTROUTING"
COMMENT = "netjail"
JAIL_COMMENT = "netjail:"
MASQUERADE = "MASQUERADE"
_TOOL = {"inet": "iptables-legacy", "inet6": "ip6tables-legacy"}
_MISSING = {errno.ENOENT, errno.ENOPROTOOPT, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.ENOSYS}

# struct nf_nat_ipv4_multi_range_compat {rangesize = 1, one zeroed range} (revision 0) and
# struct nf_nat_range {all zero} (IPv6 revision 0), each after the 32-byte xt_entry_target header
# and padded to 8 bytes, exactly as iptables' libxt_MASQUERADE writes them.
_MASQUERADE_DATA = {"inet": struct.pack("=I", 1).ljust(24, b"\0"), "inet6": bytes(40)}


def jail_comment(jail: str) -> str:
    return JAIL_COMMENT + jail


def masquerade_entry(match: Match, comment: str) -> bytes:
    """The rule entry `<match> -m comment --comment <comment> -j MASQUERADE`."""
    entry = bytearray(build_entry(match, "ACCEPT", comment))
    layout = LAYOUTS[match.family]
    (target_offset,) = struct.unpack_from("=H", entry, layout.target_offset)
    data = _MASQUERADE_DATA[match.family]
    size = 32 + len(data)
    target = struct.pack(f"=H{XT_EXTENSION_MAXNAMELEN}sB", size, MASQUERADE.encode(), 0) + data
    out = entry[:target_offset] + target
    struct.pack_into("=H", out, layout.target_offset + 2, len(out))  # next_offset
    return bytes(out)


def canonical_sources(sources: Iterable[str]) -> dict[str, list[str]]:
    """family -> sorted, de-duplicated network prefixes ("10.231.4.0/30"). BadInput-free: the
    prefixes come from netjail itself, so a bad one is a bug (ValueError)."""
    out: dict[str, set[str]] = {f: set() for f in FAMILIES}
    for src in sources:
        net = ipaddress.ip_network(src, strict=False)
        out["inet6" if net.version == 6 else "inet"].add(str(net))
    return {f: sorted(v) for f, v in out.items()}


def edit_nat_chain(current: Current, comment: str | None, wanted: Sequence[RuleKey]) -> list[Edit]:
    """Edits making NETJAIL-NAT hold `wanted` for one jail (rules tagged `comment`), other jails'
    rules left alone; `comment` None: every rule goes. Rules that are not netjail masquerades
    as written (undecodable, other targets) are dropped: the chain is ours."""
    wanted_set = set(wanted)
    seen: set[RuleKey] = set()
    keep = [False] * len(current)
    for i, (target, key) in enumerate(current):
        if (
            comment is None
            or key is None
            or target != MASQUERADE
            or not (key[2] or "").startswith(JAIL_COMMENT)
        ):
            continue
        if key[2] != comment:
            keep[i] = True
        elif key in wanted_set and key not in seen:
            keep[i] = True
            seen.add(key)
    edits: list[Edit] = [Delete(i) for i in reversed(range(len(current))) if not keep[i]]
    edits += [Append(k) for k in dict.fromkeys(wanted) if k not in seen]
    return edits


class NatTable(Table):
    """A libiptc handle on the nat table of one family (Table opens the filter table)."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.dirty = False
        self._lib, self._errno_loc = _library(family)
        self._errno_loc()[0] = 0
        handle = self._lib.iptc_init(b"nat")
        if not handle:
            err = self._errno()
            if err in _MISSING:
                raise UnsupportedEnvironment(
                    f"{_TOOL[family]} nat table unavailable here ({self._strerror(err)})"
                )
            raise _renamed(translate(family, "cannot read", err, self._strerror(err)))
        self._handle = handle

    def commit(self) -> None:
        try:
            super().commit()
        except CommitConflict:
            raise
        except NetjailError as exc:
            raise _renamed(exc) from None

    def _check(self, ok: int, action: str) -> None:
        try:
            super()._check(ok, action)
        except NetjailError as exc:
            raise _renamed(exc) from None


def _renamed(exc: NetjailError) -> NetjailError:
    """libiptc.translate names the filter table; this handle is on nat."""
    return type(exc)(str(exc).replace("filter table", "nat table"))


class Masquerade:
    """Masquerade rules per jail, both families. Every method is idempotent."""

    def __init__(self, *, lock_timeout: float = 10.0) -> None:
        self._lock_timeout = lock_timeout
        self._mutex = threading.RLock()

    def sync_masquerade(self, jail: str, sources: Sequence[str], out_iface: str | None = None) -> None:
        """Masquerade traffic from `sources` (the jail's netns prefixes, any family) leaving
        through `out_iface` (None: any interface). Exactly these rules for the jail, no more."""
        check_jail_name(jail)
        by_family = canonical_sources(sources)
        wanted: dict[str, list[RuleKey]] = {
            fam: [(MASQUERADE, Match(fam, src=src, out_iface=out_iface), jail_comment(jail)) for src in srcs]
            for fam, srcs in by_family.items()
        }
        self._change({jail: wanted})

    def remove(self, jail: str) -> None:
        """Remove the jail's rules (and the chain and jump when it was the last one)."""
        check_jail_name(jail)
        self._change({jail: {f: [] for f in FAMILIES}})

    def reset(self) -> None:
        """Remove NETJAIL-NAT and its jump in both families; nothing else is touched."""
        self._change(None)

    def read(self) -> dict[str, tuple[str, ...]]:
        """jail -> the source prefixes it has masquerade rules for (both families)."""
        out: dict[str, list[str]] = {}
        with self._mutex:
            for fam in FAMILIES:
                table = self._open(fam, required=False)
                if table is None:
                    continue
                with table:
                    if NAT_CHAIN not in table.chains():
                        continue
                    for target, key in _current(table, NAT_CHAIN):
                        if target == MASQUERADE and key and (key[2] or "").startswith(JAIL_COMMENT):
                            jail = (key[2] or "")[len(JAIL_COMMENT) :]
                            out.setdefault(jail, []).append(key[1].src or "")
        return {j: tuple(sorted(v)) for j, v in out.items()}

    # ---- transactions -------------------------------------------------------------------------

    def _open(self, family: str, *, required: bool) -> NatTable | None:
        try:
            return NatTable(family)
        except UnsupportedEnvironment:
            if required:
                raise
            return None

    def _change(self, changes: Mapping[str, Mapping[str, list[RuleKey]]] | None) -> None:
        """Apply `changes` (jail -> family -> wanted rules; None: remove everything)."""
        needed = {f for per_fam in (changes or {}).values() for f, keys in per_fam.items() if keys}
        pending = list(FAMILIES)
        committed: dict[str, dict[str, list[RuleKey]]] = {}  # family -> its jails' rules before

        def attempt() -> bool:
            self._attempt(changes, pending, needed, committed)
            return not pending

        with self._mutex:
            commit_with_retries(
                attempt,
                lambda cause: self._undo(committed, cause),
                "the nat table kept changing under netjail",
            )

    def _attempt(
        self,
        changes: Mapping[str, Mapping[str, list[RuleKey]]] | None,
        pending: list[str],
        needed: set[str],
        committed: dict[str, dict[str, list[RuleKey]]],
    ) -> None:
        with xtables_lock(self._lock_timeout):
            staged: list[tuple[NatTable, dict[str, list[RuleKey]]]] = []
            try:
                for fam in list(pending):
                    table = self._open(fam, required=fam in needed)
                    if table is None:
                        pending.remove(fam)
                        continue
                    staged.append((table, {}))
                    fam_changes = (
                        None if changes is None else {j: list(c.get(fam, [])) for j, c in changes.items()}
                    )
                    staged[-1] = (table, _jail_rules(table, fam_changes))
                    _stage(table, fam_changes)
                for table, before in staged:
                    try:
                        table.commit()
                    except CommitConflict:
                        return
                    committed.setdefault(table.family, before)
                    pending.remove(table.family)
            finally:
                for table, _ in staged:
                    table.close()

    def _undo(self, committed: dict[str, dict[str, list[RuleKey]]], cause: NetjailError) -> None:
        """Put families already committed by a failing change back as they were."""
        for fam, before in list(committed.items()):
            committed.pop(fam)
            try:
                with xtables_lock(self._lock_timeout):
                    table = NatTable(fam)
                    with table:
                        _stage(table, before)
                        table.commit()
            except NetjailError as exc:
                cause.args = (f"{cause}; undoing the {fam} half failed too: {exc}",)


def _current(table: Table, chain: str, only_target: str | None = None) -> list[tuple[str, RuleKey | None]]:
    layout = LAYOUTS[table.family]
    out: list[tuple[str, RuleKey | None]] = []
    for raw, target in table.rules(chain):
        key: RuleKey | None = None
        if only_target is None or target == only_target:
            decoded = decode_entry(layout, raw)
            if decoded is not None:
                key = (target, decoded.match, decoded.comment)
        out.append((target, key))
    return out


def _jail_rules(table: Table, changes: Mapping[str, list[RuleKey]] | None) -> dict[str, list[RuleKey]]:
    """The rules the jails in `changes` (None: every jail) have now, to undo a change."""
    out: dict[str, list[RuleKey]] = {} if changes is None else {j: [] for j in changes}
    if NAT_CHAIN not in table.chains():
        return out
    for target, key in _current(table, NAT_CHAIN):
        if target != MASQUERADE or key is None or not (key[2] or "").startswith(JAIL_COMMENT):
            continue
        jail = (key[2] or "")[len(JAIL_COMMENT) :]
        if changes is None or jail in changes:
            out.setdefault(jail, []).append(key)
    return out


def _stage(table: Table, changes: Mapping[str, list[RuleKey]] | None) -> None:
    """Edit one family's in-memory nat table so it holds `changes` (None: nothing of netjail)."""
    fam = table.family
    chains = set(table.chains())
    exists = NAT_CHAIN in chains
    if changes is None:
        if exists:
            _run(table, BUILTIN, edit_builtin(_current(table, BUILTIN, NAT_CHAIN), NAT_CHAIN, None))
            table.delete_chain(NAT_CHAIN)
        return
    if not exists:
        if not any(changes.values()):
            return
        table.create_chain(NAT_CHAIN)
    for jail, wanted in changes.items():
        _run(table, NAT_CHAIN, edit_nat_chain(_current(table, NAT_CHAIN), jail_comment(jail), wanted))
    live = bool(table.rules(NAT_CHAIN))
    jump = (NAT_CHAIN, Match(fam), COMMENT) if live else None
    _run(table, BUILTIN, edit_builtin(_current(table, BUILTIN, NAT_CHAIN), NAT_CHAIN, jump))
    if not live:
        table.delete_chain(NAT_CHAIN)


def _run(table: Table, chain: str, edits: list[Edit]) -> None:
    for e in edits:
        if isinstance(e, Delete):
            table.delete(chain, e.position)
            continue
        target, match, comment = e.key
        if target == MASQUERADE:
            entry = masquerade_entry(match, comment or "")
        else:
            entry = build_entry(match, target, comment)
        if isinstance(e, Insert):
            table.insert(chain, entry, e.position)
        else:
            table.append(chain, entry)

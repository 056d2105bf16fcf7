"""What `list` and `counters` show, from a registry and a counters read: the engine's
`jails()`/`counters()` use these, and the CLI calls them without importing the engine (its
imports are a large part of a short command's run time).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from netjail.backends.errors import InsufficientPrivilege
from netjail.backends.jails.state import LAUNCHER, JailState, MemberState, Registry, Store
from netjail.backends.jails.strategies import by_name, strategy
from netjail.backends.model import Counters, JailCounters, JailInfo, Member
from netjail.backends.system import identity


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise InsufficientPrivilege(f"{what} needs root (CAP_NET_ADMIN and write access to cgroup2)")


def jail_counters(reg: Registry, found: Mapping[str, JailCounters]) -> tuple[JailCounters, ...]:
    """Every registered jail (uncountable ones as such), then chains the registry lacks."""
    names = list(reg.jails) + sorted(set(found) - set(reg.jails))
    zero = Counters()
    uncountable = {j.name for j in reg.jails.values() if not countable(j.strategy)}
    return tuple(
        JailCounters(n, zero, zero, zero, countable=False)
        if n in uncountable
        else found.get(n) or JailCounters(n, zero, zero, zero)
        for n in names
    )


def jail_infos(reg: Registry, found: Mapping[str, JailCounters]) -> tuple[JailInfo, ...]:
    return tuple(jail_info(j, found.get(j.name)) for j in reg.jails.values())


def read_now(store: Store) -> tuple[Registry, Mapping[str, JailCounters]]:
    """The registry (read without the lock: it is replaced atomically) and the kernel's
    counters, read by the firewall backend in use without its rule library (python-iptables)."""
    from netjail.backends.firewall import registry

    reg = store.load()
    return reg, registry.read_counters(registry.choose(reg.backend, reg.jails)[0])


def countable(strategy: str) -> bool:
    info = by_name(strategy)
    return info is None or info.counters


def alive(m: MemberState) -> bool:
    stat = identity.read_stat(m.pid)
    return stat is not None and stat.start_time == m.start_time


def jail_info(jail: JailState, counters: JailCounters | None) -> JailInfo:
    return JailInfo(
        name=jail.name,
        strategy=jail.strategy,
        allow=tuple(jail.allow),
        members=tuple(
            Member(m.pid, m.start_time, alive(m), m.name) for m in jail.members if m.status != LAUNCHER
        ),
        counters=counters.total if counters else Counters(),
        countable=countable(jail.strategy),
        allow_loopback=jail.allow_loopback,
        link=strategy(jail.strategy).link_label(jail),
    )

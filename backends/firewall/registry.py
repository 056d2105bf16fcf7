"""Which firewall backend netjail uses, and what each one is: the one place a backend is chosen.

A backend is a module with a `Firewall` subclass (base.py) plus one `BackendInfo` entry here.
The entry is plain data, readable without loading the backend's rule library (libiptc,
libnftables): the jail-name rule (jails/names.py) asks it for the longest name the backend can
hold, `netjail counters` asks it for the module that reads counters, doctor for the checks that
are the backend's own.

Which backend a command uses (`choose`, docs/backends.md): while jails are recorded, the one
that made them (state.json's "backend"); else the one asked for by name (`--backend`, else
NETJAIL_BACKEND, else the deprecated NETJAIL_FIREWALL); else the host's default (choice.py).
Asking for another one than the jails' is refused.

This module imports nothing of the firewall package at import, nor typing (`netjail counters`
loads it).
"""

from __future__ import annotations

import importlib
import os

from netjail.backends.errors import BadInput, OperationFailed, UnsupportedEnvironment
from netjail.backends.firewall.chains import MAX_JAIL_NAME as IPTABLES_MAX_JAIL_NAME

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from types import ModuleType

    from netjail.backends.firewall.base import Firewall
    from netjail.backends.model import JailCounters

ENV = "NETJAIL_BACKEND"
OLD_ENV = "NETJAIL_FIREWALL"  # its name before there were two backends: still read, after ENV


class Limits:
    """What a backend's kernel objects can hold. A plain class, like BackendInfo: `netjail
    counters` reads the registry, and each dataclass costs 1-2 ms of its start
    (tests/unit/test_cli_imports.py)."""

    __slots__ = ("max_jail_name",)

    def __init__(self, max_jail_name: int) -> None:
        self.max_jail_name = max_jail_name  # a jail name becomes part of the backend's chain names


class BackendInfo:
    """A backend described as data (no rule library loaded)."""

    __slots__ = (
        "counters_module",
        "doctor_checks",
        "factory",
        "limits",
        "module",
        "name",
        "needs_ipset",
        "needs_xtables",
        "tools",
    )

    def __init__(
        self,
        *,
        name: str,
        module: str,
        factory: str,
        counters_module: str,
        limits: Limits,
        tools: tuple[tuple[str, str], ...] = (),
        doctor_checks: tuple[str, ...] = (),
        needs_ipset: bool = False,
        needs_xtables: bool = False,
    ) -> None:
        self.name = name  # the --backend / NETJAIL_BACKEND value, and state.json's "backend"
        self.module = module  # the module holding the Firewall subclass
        self.factory = factory  # that class's name
        # has `read_counters() -> Mapping[str, JailCounters]`, no rule library
        self.counters_module = counters_module
        self.limits = limits
        # programs the backend (or its doctor checks and tests) runs: program, Debian package;
        # the Makefile's SYSTEM_TOOLS holds each (tests/unit/test_firewall_registry.py)
        self.tools = tools
        # doctor check names that are this backend's own: doctor runs them only for the backend
        # in use, and the common ones for every backend
        self.doctor_checks = doctor_checks
        self.needs_ipset = needs_ipset  # kernel ipsets, for the sockets that cannot be marked
        self.needs_xtables = needs_xtables  # xtables-legacy tables and extensions

    def __repr__(self) -> str:
        return f"BackendInfo(name={self.name!r}, module={self.module!r})"


IPTABLES = BackendInfo(
    name="iptables",
    module="netjail.backends.firewall.iptc_backend",
    factory="IptcFirewall",
    counters_module="netjail.backends.firewall.counters",
    limits=Limits(max_jail_name=IPTABLES_MAX_JAIL_NAME),
    tools=(
        ("iptables", "iptables"),
        ("iptables-legacy", "iptables"),
        ("ip6tables-legacy", "iptables"),
        ("iptables-legacy-save", "iptables"),
        ("ip6tables-legacy-save", "iptables"),
        ("iptables-legacy-restore", "iptables"),
        ("ip6tables-legacy-restore", "iptables"),
    ),
    doctor_checks=("xt_cgroup", "xt_owner", "iptables", "legacy-rules", "ipset", "python-iptables"),
    needs_ipset=True,
    needs_xtables=True,
)

NFTABLES = BackendInfo(
    name="nftables",
    module="netjail.backends.firewall.nft_backend",
    factory="NftFirewall",
    counters_module="netjail.backends.firewall.nft_counters",
    limits=Limits(max_jail_name=IPTABLES_MAX_JAIL_NAME),
    tools=(("nft", "nftables"),),
    doctor_checks=("nftables",),
)

BACKENDS = {b.name: b for b in (IPTABLES, NFTABLES)}

_asked: list[str] = []  # the command line's --backend (request()), when given


def request(name: str | None) -> None:
    """The command line's `--backend NAME` (None: forget it): it outweighs the environment."""
    _asked[:] = [] if name is None else [name]
    requested()  # a bad name is refused now, before anything runs


def requested(env: Mapping[str, str] | None = None) -> tuple[BackendInfo, str] | None:
    """The backend asked for by name and who asked: --backend, NETJAIL_BACKEND, then
    NETJAIL_FIREWALL; None when nobody did (unset or empty)."""
    if _asked:
        name, source = _asked[0], "--backend"
    else:
        environ = os.environ if env is None else env
        key = ENV if environ.get(ENV) else OLD_ENV
        name, source = environ.get(key) or "", key
        if not name:
            return None
    info = BACKENDS.get(name)
    if info is None:
        known = ", ".join(sorted(BACKENDS))
        shown = f"--backend {name}" if source == "--backend" else f"{source}={name!r}"
        raise BadInput(f"{shown}: no such firewall backend (known: {known})")
    return info, source


def installed() -> frozenset[str]:
    """The backends whose module this netjail has (a few stat calls, nothing imported)."""
    # importlib.machinery's PathFinder, from the frozen module every Python has loaded
    # (importing importlib.machinery costs ~0.5 ms a command)
    from _frozen_importlib_external import PathFinder

    package = importlib.import_module("netjail.backends.firewall")
    return frozenset(
        b.name for b in BACKENDS.values() if PathFinder.find_spec(b.module, package.__path__) is not None
    )


def host_default() -> tuple[BackendInfo, str]:
    """The backend this host gets when nothing is recorded or asked for, and why (choice.py)."""
    from netjail.backends.firewall import choice

    name, why = choice.decide(choice.probe(installed()))
    return BACKENDS[name], f"default here: {why}"


def choose(
    recorded: str = "", jails: Collection[str] = (), env: Mapping[str, str] | None = None
) -> tuple[BackendInfo, str]:
    """The backend in use and why: `recorded` made `jails` (state.json), which stay with it."""
    asked = requested(env)
    if jails:
        names = ", ".join(sorted(jails))
        made = BACKENDS.get(recorded or IPTABLES.name)  # none recorded: the one there was
        if made is None:
            raise OperationFailed(
                f"jails {names} were made with backend {recorded!r}, which this netjail does not have"
            )
        if asked is not None and asked[0] is not made:
            raise BadInput(
                f"jails {names} were made with {made.name}; unblock them or run "
                f"`netjail --backend {made.name} reset` before switching to {asked[0].name}"
            )
        return made, f"jails {names} were made with it"
    if asked is not None:
        return asked[0], f"asked for by {asked[1]}"
    return host_default()


def selected(env: Mapping[str, str] | None = None) -> BackendInfo:
    """The backend a command uses when no jail is recorded (choose() without a state)."""
    return choose(env=env)[0]


def limits() -> Limits:
    """The limits of the backend asked for; none asked: what every backend can hold (a jail
    name is checked before the backend is known, and must fit the one the host defaults to)."""
    asked = requested()
    if asked is not None:
        return asked[0].limits
    return Limits(max_jail_name=min(b.limits.max_jail_name for b in BACKENDS.values()))


def backend_class(info: BackendInfo) -> type[Firewall]:
    """One backend's Firewall subclass (importing its module loads its rule library)."""
    cls: type[Firewall] = getattr(_backend_module(info, info.module), info.factory)
    return cls


def _backend_module(info: BackendInfo, name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise UnsupportedEnvironment(f"this netjail has no {info.name} backend ({name})") from None


def create(info: BackendInfo) -> Firewall:
    """A new instance of one backend."""
    return backend_class(info)()


def select_backend() -> Firewall:
    """The backend in use, new instance."""
    return create(selected())


def read_counters(info: BackendInfo | None = None) -> Mapping[str, JailCounters]:
    """Every jail's counters from `info` (default: `selected()`), without loading its rule
    library."""
    info = info or selected()
    reader = _backend_module(info, info.counters_module).read_counters
    found: Mapping[str, JailCounters] = reader()
    return found

"""Which firewall backend netjail uses, and what each one is: the one place a backend is chosen.

A backend is a module with a `Firewall` subclass (base.py) plus one `BackendInfo` entry here.
The entry is plain data, readable without loading the backend's rule library (libiptc,
libnftables): the jail-name rule (jails/names.py) asks it for the longest name the backend can
hold, `netjail counters` asks it for the module that reads counters, doctor for the checks that
are the backend's own. `NETJAIL_FIREWALL` picks a backend by name; iptables is the default.

This module imports nothing of the firewall package, nor typing (`netjail counters` loads it).
"""

from __future__ import annotations

import importlib
import os

from netjail.backends.errors import BadInput
from netjail.backends.firewall.chains import MAX_JAIL_NAME as IPTABLES_MAX_JAIL_NAME

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms a command)
if TYPE_CHECKING:
    from collections.abc import Mapping

    from netjail.backends.firewall.base import Firewall
    from netjail.backends.model import JailCounters

ENV = "NETJAIL_FIREWALL"
DEFAULT = "iptables"


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
        self.name = name  # the NETJAIL_FIREWALL value
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

BACKENDS: dict[str, BackendInfo] = {b.name: b for b in (IPTABLES, NFTABLES)}


def selected(env: Mapping[str, str] | None = None) -> BackendInfo:
    """The backend NETJAIL_FIREWALL names (unset or empty: the default)."""
    name = (os.environ if env is None else env).get(ENV) or DEFAULT
    info = BACKENDS.get(name)
    if info is None:
        known = ", ".join(sorted(BACKENDS))
        raise BadInput(f"{ENV}={name!r}: no such firewall backend (known: {known})")
    return info


def limits() -> Limits:
    return selected().limits


def backend_class(info: BackendInfo) -> type[Firewall]:
    """One backend's Firewall subclass (importing its module loads its rule library)."""
    cls: type[Firewall] = getattr(importlib.import_module(info.module), info.factory)
    return cls


def create(info: BackendInfo) -> Firewall:
    """A new instance of one backend."""
    return backend_class(info)()


def select_backend() -> Firewall:
    """The backend in use, new instance."""
    return create(selected())


def read_counters() -> Mapping[str, JailCounters]:
    """Every jail's counters from the backend in use, without loading its rule library."""
    reader = importlib.import_module(selected().counters_module).read_counters
    found: Mapping[str, JailCounters] = reader()
    return found

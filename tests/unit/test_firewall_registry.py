"""Backend selection and description (firewall/registry.py): one place, plain data."""

from __future__ import annotations

import pytest
from netjail.backends.doctor import checks
from netjail.backends.errors import BadInput
from netjail.backends.firewall import registry
from netjail.backends.firewall.chains import MAX_JAIL_NAME
from netjail.backends.jails import names
from netjail.backends.model import Check

from tests.unit.test_system_tools import makefile_tools


def test_iptables_is_the_default_and_env_picks_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(registry.ENV, raising=False)
    assert registry.selected() is registry.IPTABLES
    monkeypatch.setenv(registry.ENV, "")
    assert registry.selected() is registry.IPTABLES
    assert registry.selected({registry.ENV: "iptables"}) is registry.IPTABLES


def test_unknown_backend_is_one_line_of_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.ENV, "pf")
    with pytest.raises(
        BadInput, match=r"^NETJAIL_FIREWALL='pf': no such firewall backend \(known: iptables, nftables\)$"
    ):
        registry.selected()
    with pytest.raises(BadInput, match="no such firewall backend"):
        names.check_jail_name("web")


def test_jail_names_follow_the_selected_backends_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert names.max_jail_name() == registry.IPTABLES.limits.max_jail_name == MAX_JAIL_NAME == 23
    roomy = registry.BackendInfo(
        name="roomy", module="x", factory="X", counters_module="x", limits=registry.Limits(max_jail_name=40)
    )
    monkeypatch.setitem(registry.BACKENDS, "roomy", roomy)
    monkeypatch.setenv(registry.ENV, "roomy")
    assert names.check_jail_name("r" * 40) == "r" * 40
    assert len(names.derive_jail_name("p" * 80, "-7")) == 40
    with pytest.raises(BadInput, match="1-40 characters"):
        names.check_jail_name("r" * 41)
    monkeypatch.setenv(registry.ENV, "iptables")
    with pytest.raises(BadInput, match="1-23 characters"):
        names.check_jail_name("r" * 24)


def test_every_backends_tools_are_installed_by_the_makefile() -> None:
    tools = makefile_tools()
    for backend in registry.BACKENDS.values():
        missing = [(prog, pkg) for prog, pkg in backend.tools if tools.get(prog) != pkg]
        assert not missing, f"add to SYSTEM_TOOLS in the Makefile for {backend.name}: {missing}"


def test_doctor_runs_the_common_checks_and_the_backends_own() -> None:
    def check(name: str) -> tuple[str, object]:
        return name, lambda: Check(name, "ok", "")

    listed = [check(n) for n in ("root", "xt_cgroup", "iptables", "marks", "nft-only", "python-iptables")]
    other = registry.BackendInfo(
        name="other",
        module="x",
        factory="X",
        counters_module="x",
        limits=registry.Limits(max_jail_name=1),
        doctor_checks=("nft-only",),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.BACKENDS, "other", other)
        kept = [n for n, _ in checks.for_backend(listed, registry.IPTABLES)]  # type: ignore[arg-type]
        assert kept == ["root", "xt_cgroup", "iptables", "marks", "python-iptables"]
        kept = [n for n, _ in checks.for_backend(listed, other)]  # type: ignore[arg-type]
        assert kept == ["root", "marks", "nft-only"]


def test_the_iptables_backend_claims_only_checks_doctor_has() -> None:
    known = {name for name, _ in checks._checks(checks._Machine())}
    assert set(registry.IPTABLES.doctor_checks) <= known
    assert [n for n, _ in checks.for_backend(checks._checks(checks._Machine()), registry.IPTABLES)] == [
        n for n, _ in checks._checks(checks._Machine())
    ]

"""Which firewall backend a command uses (firewall/choice.py, registry.choose): the pure rule
from facts to (backend, reason), the jails' own backend outweighing a request, and the reading
of the kernel's answers. The same choice on real tables: tests/integration/test_backend_choice.py."""

from __future__ import annotations

import errno
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from netjail.app import cli
from netjail.backends.doctor import backend_checks
from netjail.backends.errors import BadInput, UnsupportedEnvironment
from netjail.backends.firewall import choice, nf_tables_probe, registry
from netjail.backends.firewall.legacy_scan import LegacyScan
from netjail.backends.jails.state import JailState, Registry, Store

BOTH = frozenset({"iptables", "nftables"})


def facts(
    nf_tables: bool | None = True,
    legacy: LegacyScan | None = None,
    installed: frozenset[str] = BOTH,
    why: str = "the kernel answered",
) -> choice.HostFacts:
    return choice.HostFacts(
        nf_tables=nf_tables, nf_tables_why=why, legacy=legacy or LegacyScan(), installed=installed
    )


@pytest.fixture(autouse=True)
def nobody_asked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(registry.ENV, raising=False)
    monkeypatch.delenv(registry.OLD_ENV, raising=False)
    yield
    registry.request(None)


def test_nftables_where_the_kernel_has_it_and_legacy_holds_nothing_foreign() -> None:
    assert choice.decide(facts()) == (
        "nftables",
        "the kernel has nf_tables and xtables-legacy holds no foreign rules",
    )


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        (facts(nf_tables=False, why="EINVAL"), "the kernel has no nf_tables (EINVAL)"),
        (facts(nf_tables=None, why="no root"), "cannot tell whether the kernel has nf_tables (no root)"),
        (
            facts(legacy=LegacyScan(foreign=("ip filter: 1 rule in OUTPUT", "ip6 nat: chain DOCKER"))),
            "xtables-legacy holds foreign rules (ip filter: 1 rule in OUTPUT; ip6 nat: chain DOCKER)",
        ),
        (
            facts(legacy=LegacyScan(jails=frozenset({"web", "db"}))),
            "xtables-legacy holds netjail chains of jails db, web",
        ),
        (
            facts(legacy=LegacyScan(unread="ip filter: Permission denied")),
            "cannot read the xtables-legacy tables (ip filter: Permission denied)",
        ),
        (
            facts(installed=frozenset({"iptables"})),
            "nftables would do here, but this netjail has no nftables backend module",
        ),
    ],
    ids=["no-nf_tables", "unknown", "foreign-legacy", "legacy-jails", "unreadable", "not-installed"],
)
def test_iptables_otherwise_and_the_reason_says_why(host: choice.HostFacts, reason: str) -> None:
    assert choice.decide(host) == ("iptables", reason)


def test_jails_the_kernel_holds_without_a_state_file_stay_with_their_backend() -> None:
    lost = facts(legacy=LegacyScan(foreign=("ip filter: 1 rule in OUTPUT",)))
    lost.nft_jails = frozenset({"web"})
    assert choice.decide(lost) == ("nftables", "nf_tables holds netjail chains of jails web")
    both = facts(legacy=LegacyScan(jails=frozenset({"db"})))
    both.nft_jails = frozenset({"web"})
    assert choice.decide(both)[0] == "iptables"  # the legacy ones weigh first
    lost.installed = frozenset({"iptables"})  # nothing here could reconcile them
    assert choice.decide(lost)[0] == "iptables"


def test_the_jails_of_a_chain_dump_are_netjails_tables_own() -> None:
    def chain(table: bytes, name: bytes) -> bytes:
        attrs = b""
        for kind, value in ((1, table + b"\0"), (3, name + b"\0")):
            attr = struct.pack("=HH", 4 + len(value), kind) + value
            attrs += attr + bytes(-len(attr) % 4)
        newchain = nf_tables_probe.NFNL_SUBSYS_NFTABLES << 8 | nf_tables_probe.NFT_MSG_NEWCHAIN
        return _reply(newchain, struct.pack("=BBH", 1, 0, 0) + attrs)

    dump = chain(b"netjail", b"nj-o-web") + chain(b"netjail", b"output") + chain(b"other", b"nj-o-fake")
    done = _reply(nf_tables_probe.NLMSG_DONE, bytes(4))
    assert nf_tables_probe.jails_in([dump, chain(b"netjail", b"nj-f-db") + done]) == {"web", "db"}


def test_live_jails_keep_their_backend_and_another_is_refused_in_one_line() -> None:
    assert registry.choose("iptables", ["web", "db"]) == (
        registry.IPTABLES,
        "jails db, web were made with it",
    )
    # the environment asking for the same one is fine; for another one, refused
    assert registry.choose("nftables", ["web"], {"NETJAIL_BACKEND": "nftables"})[0] is registry.NFTABLES
    with pytest.raises(BadInput) as refused:
        registry.choose("iptables", ["web", "db"], {"NETJAIL_BACKEND": "nftables"})
    assert str(refused.value) == (
        "jails db, web were made with iptables; unblock them or run "
        "`netjail --backend iptables reset` before switching to nftables"
    )
    assert "\n" not in str(refused.value) and refused.value.exit_code == 2
    registry.request("iptables")  # --backend outweighs the environment: no refusal
    assert registry.choose("iptables", ["web"], {"NETJAIL_BACKEND": "nftables"})[0] is registry.IPTABLES
    registry.request("nftables")
    with pytest.raises(BadInput, match=r"before switching to nftables$"):
        registry.choose("iptables", ["web"])


def test_without_jails_the_request_is_free_and_says_who_asked() -> None:
    assert registry.choose("iptables", [], {"NETJAIL_BACKEND": "nftables"}) == (
        registry.NFTABLES,
        "asked for by NETJAIL_BACKEND",
    )
    registry.request("iptables")
    assert registry.choose("nftables", []) == (registry.IPTABLES, "asked for by --backend")
    with pytest.raises(
        BadInput, match=r"^--backend pf: no such firewall backend \(known: iptables, nftables\)$"
    ):
        registry.request("pf")


def test_a_recorded_backend_this_netjail_lacks_is_an_error_not_a_guess() -> None:
    with pytest.raises(Exception, match="made with backend 'pf', which this netjail does not have"):
        registry.choose("pf", ["web"])


def test_a_missing_backend_module_is_an_unsupported_environment() -> None:
    ghost = registry.BackendInfo(
        name="ghost",
        module="netjail.backends.firewall.no_such_backend",
        factory="X",
        counters_module="netjail.backends.firewall.no_such_counters",
        limits=registry.Limits(max_jail_name=1),
    )
    with pytest.raises(UnsupportedEnvironment, match=r"^this netjail has no ghost backend"):
        registry.create(ghost)
    with pytest.raises(UnsupportedEnvironment, match="no_such_counters"):
        registry.read_counters(ghost)
    assert "iptables" in registry.installed()


def test_the_cli_knows_every_backend_and_takes_the_option_before_or_after_the_command() -> None:
    assert tuple(sorted(registry.BACKENDS)) == cli.BACKEND_NAMES
    assert cli._command_in(["--backend", "nftables", "ps", "--json"]) == "ps"
    assert cli._command_in(["-p", "--backend", "iptables", "list"]) == "list"
    for argv in (
        ["--backend", "nftables", "list"],
        ["list", "--backend", "nftables"],
        ["--backend=nftables", "list"],
    ):
        args = cli.build_parser(argv).parse_args(argv)
        assert (args.command, args.backend) == ("list", "nftables"), argv
    assert cli.build_parser(["list"]).parse_args(["list"]).backend is None


def test_a_bad_backend_option_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--backend", "pf", "list"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'pf'" in err


def test_state_records_the_backend_and_an_old_file_means_iptables(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    store = Store(tmp_path)
    store.save(Registry({"web": JailState("web")}, backend="nftables"))
    assert json.loads((tmp_path / "state.json").read_text())["backend"] == "nftables"
    assert store.load().backend == "nftables"
    doc = json.loads((tmp_path / "state.json").read_text())
    del doc["backend"]  # as netjail wrote it before there were two backends
    (tmp_path / "state.json").write_text(json.dumps(doc))
    assert store.load().backend == "iptables"
    (tmp_path / "state.json").write_text(json.dumps({**doc, "jails": []}))
    assert store.load().backend == ""  # no jails: nothing recorded, the choice is free
    (tmp_path / "state.json").write_text(json.dumps({**doc, "backend": 7}))
    assert store.load().problems  # a backend that is not a name: a corrupt file


def _reply(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, 0, 1, 0) + payload


def test_the_kernels_answer_to_getgen() -> None:
    newgen = nf_tables_probe.NFNL_SUBSYS_NFTABLES << 8 | nf_tables_probe.NFT_MSG_NEWGEN
    assert nf_tables_probe.answer(_reply(newgen, bytes(12)))[0] is True
    found, why = nf_tables_probe.answer(_reply(2, struct.pack("=i", -errno.EINVAL) + bytes(16)))
    assert found is False and "Invalid argument" in why
    assert nf_tables_probe.answer(_reply(2, struct.pack("=i", -errno.EPERM) + bytes(16)))[0] is None
    assert nf_tables_probe.answer(b"\0" * 4)[0] is None


def test_doctor_says_which_backend_is_in_use_why_and_what_each_needs() -> None:
    available = {
        "iptables": backend_checks.iptables_available(True, None, True),
        "nftables": backend_checks.nftables_available((False, "EINVAL"), None, True),
    }
    check = backend_checks.backends_check("iptables", "default here: the kernel has no nf_tables", available)
    assert check.status == "ok"
    assert check.detail == (
        "iptables in use (default here: the kernel has no nf_tables); iptables: available "
        "(xtables-legacy in the kernel, python-iptables loads); nftables: unavailable (EINVAL)"
    )
    assert backend_checks.backends_check("nftables", "asked for by --backend", available).status == "fail"
    refused = backend_checks.backends_check(None, "jails web were made with iptables; ...", available)
    assert refused.status == "fail" and refused.detail.startswith("jails web were made with iptables")
    no_lib = backend_checks.nftables_available((True, "answered"), "cannot open", True)
    assert no_lib[0] is False and "libnftables.so.1: cannot open" in no_lib[1]


def test_the_nftables_check_names_netjails_table_and_the_others() -> None:
    ruleset = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "netjail", "handle": 1}},
            {"table": {"family": "ip", "name": "filter", "handle": 2}},
            {"chain": {"family": "ip", "table": "filter", "name": "output"}},
            {"table": {"family": "inet", "name": "firewalld", "handle": 3}},
        ]
    }
    tables = backend_checks.nft_tables(json.dumps(ruleset))
    check = backend_checks.nftables_check("/usr/sbin/nft", None, (True, "answered"), tables)
    assert check.status == "ok"
    assert "table inet netjail present" in check.detail
    assert "other tables: inet firewalld, ip filter" in check.detail
    absent = backend_checks.nftables_check(None, None, (True, "answered"), [])
    assert absent.status == "warn" and "table inet netjail absent; no other tables" in absent.detail
    assert backend_checks.nftables_check("/usr/sbin/nft", None, (False, "EINVAL"), None).status == "fail"
    assert backend_checks.nftables_check("/usr/sbin/nft", "not found", (True, "x"), None).status == "fail"


def test_the_tui_takes_the_option_too(capsys: pytest.CaptureFixture[str]) -> None:
    from netjail.app import tui

    assert tui.parse_args(["--backend", "nftables"]).backend == "nftables"
    assert tui.parse_args([]).backend is None
    with pytest.raises(SystemExit) as exited:
        tui.parse_args(["--backend", "pf"])
    assert exited.value.code == 2 and capsys.readouterr().err.startswith("netjail-tui: argument --backend")

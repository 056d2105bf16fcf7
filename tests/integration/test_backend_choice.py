"""Which firewall backend netjail uses, on this kernel: the host's default with and without a
foreign xtables-legacy rule, the backend state.json records for the jails, a switch refused while
they live, and what doctor says (docs/backends.md).

The default is asked in a network namespace of its own (`unshare --net`, made per call), so a
planted legacy rule meets no other test; the legacy scan itself runs in this file's namespace.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from netjail.backends.firewall import legacy_scan, registry

from tests.integration.test_block import legacy_rules

CLI = Callable[..., subprocess.CompletedProcess[str]]
NFT_MODULE = "nftables" in registry.installed()  # the nftables backend lands from main
REFUSED = (
    "netjail: jails {jails} were made with iptables; unblock them or run "
    "`netjail --backend iptables reset` before switching to nftables\n"
)


@pytest.fixture(autouse=True)
def nobody_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite may be run with a backend asked for: these tests ask for themselves."""
    monkeypatch.delenv(registry.ENV, raising=False)
    monkeypatch.delenv(registry.OLD_ENV, raising=False)


@pytest.fixture
def sleepers() -> Iterator[Callable[[], int]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> int:
        procs.append(subprocess.Popen(["sleep", "120"]))
        return procs[-1].pid

    yield start
    for p in procs:
        p.kill()
        p.wait()


def doctor_in_fresh_netns(
    tmp_path: Path, setup: str = "", env: dict[str, str] | None = None
) -> dict[str, Any]:
    """`netjail doctor --json` in a new network namespace, after the shell commands `setup`."""
    state = tmp_path / "fresh-state"
    script = f'ip link set lo up && {setup or "true"} && exec "$0" -m netjail.app.cli doctor --json'
    out = subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", script, sys.executable],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_environ(), "NETJAIL_STATE_DIR": str(state), **(env or {})},
    )
    assert out.stdout, out.stderr
    return {c["name"]: c for c in json.loads(out.stdout)}


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.mark.xfail(not NFT_MODULE, reason="the nftables backend module lands from main", strict=True)
def test_the_default_is_nftables_where_legacy_holds_nothing_foreign(tmp_path: Path) -> None:
    c = doctor_in_fresh_netns(tmp_path)
    assert c["backends"]["detail"].startswith(
        "nftables in use (default here: the kernel has nf_tables and xtables-legacy holds no foreign rules)"
    ), c["backends"]
    assert "nftables" in c and "xt_cgroup" not in c  # the checks of the backend in use


def test_a_foreign_legacy_rule_makes_the_default_iptables(tmp_path: Path) -> None:
    c = doctor_in_fresh_netns(tmp_path, "iptables-legacy -A OUTPUT -j ACCEPT")
    assert c["backends"]["status"] == "ok"
    assert c["backends"]["detail"].startswith(
        "iptables in use (default here: xtables-legacy holds foreign rules (ip filter: 1 rule in OUTPUT)); "
        "iptables: available (xtables-legacy in the kernel, python-iptables loads); nftables: "
    ), c["backends"]
    assert "xt_cgroup" in c and "nftables" not in c
    # another family, another table, a chain of its own: as foreign
    c = doctor_in_fresh_netns(
        tmp_path, "ip6tables-legacy -t mangle -N OTHER && iptables-legacy -P FORWARD DROP"
    )
    assert "(ip filter: policy FORWARD DROP; ip6 mangle: chain OTHER)" in c["backends"]["detail"], c[
        "backends"
    ]
    # the same namespace without the rule: the rule was the reason
    c = doctor_in_fresh_netns(
        tmp_path, "iptables-legacy -A OUTPUT -j ACCEPT && iptables-legacy -D OUTPUT -j ACCEPT"
    )
    detail = c["backends"]["detail"]
    assert detail.startswith("nftables in use") and "holds foreign" not in detail, c["backends"]


def test_the_scan_tells_netjails_legacy_rules_from_foreign_ones(
    cli: CLI, sleepers: Callable[[], int]
) -> None:
    out = cli("--backend", "iptables", "block", str(sleepers()), "--jail", "scanned")
    assert out.returncode == 0, out.stderr
    assert "-j NETJAIL-OUT" in legacy_rules() and ":NJ-O-scanned" in legacy_rules()
    found = legacy_scan.scan()
    assert (found.foreign, found.jails, found.unread) == ((), frozenset({"scanned"}), "")
    subprocess.run(
        ["iptables-legacy", "-A", "OUTPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT"], check=True
    )
    try:
        found = legacy_scan.scan()
        assert found.foreign == ("ip filter: 1 rule in OUTPUT",) and found.jails == {"scanned"}
    finally:
        subprocess.run(
            ["iptables-legacy", "-D", "OUTPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT"], check=True
        )


def test_nf_tables_jails_are_found_in_netjails_table_only() -> None:
    from netjail.backends.firewall import nf_tables_probe

    assert nf_tables_probe.netjail_jails() == frozenset()
    script = "add table inet other\nadd chain inet other nj-o-fake\nadd table inet netjail\n"
    script += (
        "add chain inet netjail nj-o-lost\nadd chain inet netjail nj-i-lost\nadd chain inet netjail output\n"
    )
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
    try:
        assert nf_tables_probe.netjail_jails() == {"lost"}
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "netjail"], check=True)
        subprocess.run(["nft", "delete", "table", "inet", "other"], check=True)
    assert nf_tables_probe.netjail_jails() == frozenset()


@pytest.mark.xfail(not NFT_MODULE, reason="the nftables backend module lands from main", strict=True)
def test_nftables_jails_without_a_state_file_keep_the_default_nftables(tmp_path: Path) -> None:
    setup = "iptables-legacy -A OUTPUT -j ACCEPT && nft add table inet netjail"
    setup += " && nft add chain inet netjail nj-o-lost"
    c = doctor_in_fresh_netns(tmp_path, setup)
    assert c["backends"]["detail"].startswith(
        "nftables in use (default here: nf_tables holds netjail chains of jails lost)"
    ), c["backends"]


def test_state_records_the_backend_and_a_switch_is_refused_while_jails_live(
    cli: CLI, sleepers: Callable[[], int], state_dir: Path
) -> None:
    out = cli("--backend", "iptables", "block", str(sleepers()), "--jail", "web")
    assert out.returncode == 0, out.stderr
    assert json.loads((state_dir / "state.json").read_text())["backend"] == "iptables"
    rules = legacy_rules()
    # another backend asked for, on the command line or in the environment: one line, exit 2
    out = cli("--backend", "nftables", "list")
    assert (out.returncode, out.stderr) == (2, REFUSED.format(jails="web")), out.stderr
    other = sleepers()
    out = cli("block", str(other), "--jail", "db", env={"NETJAIL_BACKEND": "nftables"})
    assert (out.returncode, out.stderr) == (2, REFUSED.format(jails="web")), out.stderr
    out = cli("block", str(other), "--jail", "db", "--backend", "nftables")  # after the command too
    assert (out.returncode, out.stderr) == (2, REFUSED.format(jails="web")), out.stderr
    assert ":NJ-O-db" not in legacy_rules()  # nothing half-done
    assert legacy_rules().replace(" ", "").count(":NJ-O-") == rules.replace(" ", "").count(":NJ-O-")
    # nothing asked for: the jails' own backend, whatever the host's default is
    out = cli("block", str(other), "--jail", "db")
    assert out.returncode == 0, out.stderr
    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(j["name"] for j in json.loads(listed.stdout)) == ["db", "web"]
    assert ":NJ-O-db" in legacy_rules()
    assert json.loads((state_dir / "state.json").read_text())["backend"] == "iptables"
    # doctor says which and why, and fails the line of a refused request
    c = {x["name"]: x for x in json.loads(cli("doctor", "--json").stdout)}
    assert c["backends"]["detail"].startswith("iptables in use (jails db, web were made with it); "), c[
        "backends"
    ]
    out = cli("--backend", "nftables", "doctor", "--json")
    assert out.returncode == 1
    c = {x["name"]: x for x in json.loads(out.stdout)}
    assert c["backends"]["status"] == "fail"
    assert c["backends"]["detail"].startswith(REFUSED.format(jails="db, web")[len("netjail: ") : -1] + "; ")
    assert "xt_cgroup" in c  # the checks of the jails' backend
    # with no jail left, the choice is free again
    out = cli("unblock", "--all")
    assert out.returncode == 0, out.stderr
    out = cli("--backend", "nftables", "list")
    assert "were made with" not in out.stderr and out.returncode != 2, out.stderr


def test_doctor_runs_the_nftables_check_for_nftables(tmp_path: Path) -> None:
    c = doctor_in_fresh_netns(tmp_path, "nft add table ip othertool", env={"NETJAIL_BACKEND": "nftables"})
    assert c["backends"]["detail"].startswith("nftables in use (asked for by NETJAIL_BACKEND); "), c[
        "backends"
    ]
    assert "xt_cgroup" not in c and "python-iptables" not in c and "legacy-rules" not in c
    assert c["nftables"]["status"] == "ok", c["nftables"]
    detail = c["nftables"]["detail"]
    assert "libnftables.so.1 loads; the kernel answered an nf_tables request (NFT_MSG_GETGEN)" in detail
    assert "table inet netjail absent; other tables: ip othertool" in detail
    # netjail's own table is named as such, not among the others
    c = doctor_in_fresh_netns(tmp_path, "nft add table inet netjail", env={"NETJAIL_BACKEND": "nftables"})
    assert "table inet netjail present; no other tables" in c["nftables"]["detail"], c["nftables"]


def test_the_tui_header_names_the_backend_the_jails_use(
    cli: CLI, sleepers: Callable[[], int], state_dir: Path
) -> None:
    from netjail.backends.engine import Engine
    from netjail.backends.firewall.iptc_backend import IptcFirewall

    out = cli("--backend", "iptables", "block", str(sleepers()), "--jail", "shown")
    assert out.returncode == 0, out.stderr
    assert Engine(state_dir, spawn_watcher=False).host_info().firewall == IptcFirewall.name
    registry.request("nftables")  # what `netjail-tui --backend nftables` does
    try:
        assert (
            Engine(state_dir, spawn_watcher=False)
            .host_info()
            .firewall.startswith("unavailable (jails shown were made with iptables; unblock them")
        )
    finally:
        registry.request(None)

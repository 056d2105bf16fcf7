"""Issue 5 in the dashboard, driven by keys against the real engine and kernel (make test's
private netns): `n` launches a command jailed (netns, seccomp), the owner strategy blocks the
selected process's user after listing every process affected, and `R` relaunches a running
UDP sender under seccomp.

The commands are tests/tui/udp_probe.py: it reports to a file what happened to its sends, its
directory, one environment variable and its network namespace, so the tests read back from
the process itself where and how it ran.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from netjail.app.netjail_app import NetjailApp
from netjail.app.process_columns import middle
from netjail.app.tui import create_app
from netjail.backends.engine import Engine
from netjail.backends.launch import netns
from netjail.widgets.block_dialog import BlockDialog
from netjail.widgets.confirm_dialog import ConfirmDialog
from netjail.widgets.jails_panel import JailsPanel, describe
from netjail.widgets.launch_dialog import LaunchDialog
from netjail.widgets.owner_preview import OwnerPreviewDialog
from netjail.widgets.process_table import ProcessTable
from textual.pilot import Pilot
from textual.widgets import OptionList, Static

from tests.conftest import Peer, assert_lists_the_user, uid_pids
from tests.tui.conftest import Notes, count, settled, sleep_in_app, wait_until
from tests.tui.test_block_flow import find

PROBE = Path(__file__).resolve().parent / "udp_probe.py"
LAUNCHED = re.compile(r"PID (\d+) started in jail (\S+) \((\w+)\): .*; output in (\S+)$")
RELAUNCHED = re.compile(r"started again as PID (\d+) in jail (\S+) \((\w+)\)")


def reports(path: Path, pid: int | None = None) -> list[dict[str, Any]]:
    """The probe's JSON lines (a launch log also holds netjail-tui's header line)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    found = [json.loads(line) for line in lines if line.startswith("{")]
    return [r for r in found if pid is None or r["pid"] == pid]


def last_count(path: Path, pid: int) -> dict[str, Any]:
    counts = [r for r in reports(path, pid) if "sent" in r]
    return counts[-1] if counts else {"sent": 0, "errors": 0, "errno": 0}


@pytest.fixture
def udpprobe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`udpprobe HOST PORT` on PATH (a script, so the process is named udpprobe): short to type."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "udpprobe"
    script.write_text(
        f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {str(PROBE)!r}\n"
        f"runpy.run_path({str(PROBE)!r}, run_name='__main__')\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SUDO_USER", raising=False)  # run-as user: whoever runs the TUI (root)
    return "udpprobe"


@pytest.fixture
def started() -> Iterator[list[int]]:
    """PIDs of commands a test had the TUI start: killed afterwards (jails go with the reset)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def dashboard(kernel: Engine) -> NetjailApp:
    return create_app(kernel, interval=0.3, counters_interval=0.2)


async def ready(pilot: Pilot[None], app: NetjailApp) -> None:
    main = app.main
    await wait_until(pilot, lambda: main.host is not None and main.strategies is not None, what="setup")


async def launch_by_keys(pilot: Pilot[None], app: NetjailApp, command: str, strategy: str) -> LaunchDialog:
    """`n`, type the command, tab to the strategies, arrow down to `strategy`, Enter."""
    await pilot.press("n")
    await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog), what="launch dialog")
    dialog = app.screen
    assert isinstance(dialog, LaunchDialog)
    names = [s.name for s in dialog.strategies]
    assert names == ["netns", "gid", "seccomp"]  # Engine.strategies() with launch=True
    await pilot.press(*command, "tab", *["down"] * names.index(strategy))
    options = dialog.query_one("#strategy", OptionList)
    assert options.has_focus and options.highlighted == names.index(strategy)
    await pilot.press("enter")
    return dialog


async def launched(pilot: Pilot[None], notes: Notes, started: list[int]) -> tuple[int, str, str, Path]:
    await wait_until(pilot, lambda: notes.having("started in jail"), what="launch notification")
    ((_, title, text),) = notes.having("started in jail")
    match = LAUNCHED.search(text)
    assert title == "launched" and match, text
    pid, jail, strategy, log = int(match[1]), match[2], match[3], Path(match[4])
    started.append(pid)
    return pid, jail, strategy, log


async def test_n_launches_under_netns_in_the_jails_namespace(
    kernel: Engine, notes: Notes, started: list[int], udpprobe: str
) -> None:
    command = f"{udpprobe} 127.0.0.1 9"
    app = dashboard(kernel)
    async with app.run_test(size=(160, 45), message_hook=notes.hook) as pilot:
        table, jails = app.main.query_one(ProcessTable), app.main.query_one(JailsPanel)
        await ready(pilot, app)
        await launch_by_keys(pilot, app, command, "netns")
        pid, jail, strategy, log = await launched(pilot, notes, started)
        assert (jail, strategy) == ("udpprobe-1", "netns") and not isinstance(app.screen, LaunchDialog)

        # the jails panel lists it with its strategy, the table has the process in its namespace
        await wait_until(pilot, lambda: jail in jails.views, what="jail card")
        assert jails.views[jail].info.strategy == "netns"
        assert [m.pid for m in jails.views[jail].info.members] == [pid]
        await wait_until(pilot, lambda: table.cell_text(pid, "netns"), what="the process labelled")
        row = table.row_of(pid)
        assert row is not None
        assert app.main.netns_of(row.process) == netns.netns_name(jail)
        cell = table.cell_text(pid, "netns") or ""
        assert netns.netns_name(jail).endswith(cell.lstrip("…")) and jail.endswith(cell[-6:])
        assert table.cell_text(pid, "jail") == middle(jail, 11)

        # stdout went to the log the notification named; the command runs in that namespace
        await wait_until(pilot, lambda: last_count(log, pid)["sent"] >= 10, what="the command's output")
        header = log.read_text().splitlines()[0]
        assert f"[netns] jail {jail}: {command}" in header
        (first,) = [r for r in reports(log, pid) if "netns" in r]
        assert first["netns"] == os.stat(netns.netns_path(jail)).st_ino == row.process.netns
        assert last_count(log, pid)["errors"] == 0  # its own loopback works

        # `u` on it: a netns jail goes as a whole, after a confirmation, and what the engine
        # noticed (the process stays cut off in its now unnamed namespace) reaches the user
        await find(pilot, table, pid)
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: jail not in jails.views, what="the jail released")
        await wait_until(pilot, lambda: notes.having("unnamed", "warning"), what="the engine's note")
        assert not netns.netns_exists(jail)
    assert not notes.having("", "error"), notes.seen


async def test_n_launches_under_seccomp_and_the_jail_says_it_cannot_be_counted(
    kernel: Engine, notes: Notes, started: list[int], udpprobe: str
) -> None:
    command = f"{udpprobe} 127.0.0.1 9"
    app = dashboard(kernel)
    async with app.run_test(size=(160, 45), message_hook=notes.hook) as pilot:
        table, jails = app.main.query_one(ProcessTable), app.main.query_one(JailsPanel)
        await ready(pilot, app)
        await launch_by_keys(pilot, app, command, "seccomp")
        pid, jail, strategy, log = await launched(pilot, notes, started)
        assert strategy == "seccomp"

        await wait_until(pilot, lambda: jail in jails.views, what="jail card")
        view = jails.views[jail]
        assert view.info.strategy == "seccomp" and not view.countable
        assert "dropped not countable: seccomp jails never reach netfilter" in describe(view).plain
        await wait_until(pilot, lambda: table.cell_text(pid, "dropped") == "n/a", what="n/a in the table")
        assert table.cell_text(pid, "jail") == middle(jail, 11) and table.cell_text(pid, "netns") == ""

        # every socket() it tries is refused: nothing is sent, the process keeps running
        await wait_until(pilot, lambda: last_count(log, pid)["errors"] >= 10, what="refused sends")
        assert last_count(log, pid)["sent"] == 0 and last_count(log, pid)["errno"] == errno.EACCES
    assert not notes.having("", "error"), notes.seen


async def test_launch_dialog_refuses_a_bad_command_inline(kernel: Engine, notes: Notes) -> None:
    app = dashboard(kernel)
    async with app.run_test(size=(160, 45), message_hook=notes.hook) as pilot:
        await ready(pilot, app)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog), what="launch dialog")
        dialog = app.screen
        await pilot.press(*"no-such-program-x --flag", "enter")
        error = dialog.query_one("#command-error", Static)
        assert "command not found on PATH: no-such-program-x" in str(error.content)
        assert app.screen is dialog  # still open: nothing launched
        await pilot.press("ctrl+a", "ctrl+k", *"sleep 'unclosed")
        assert "no closing quotation" in str(error.content)
        await pilot.press("escape")
        assert not isinstance(app.screen, LaunchDialog)
    assert kernel.jails() == () and not notes.having("launched")


async def test_owner_strategy_lists_the_users_processes_then_drops_only_theirs(
    kernel: Engine, spawn_peer: Callable[..., Peer], notes: Notes
) -> None:
    to_theirs = spawn_peer("udp-recv", "127.0.0.1", 0)
    to_ours = spawn_peer("udp-recv", "127.0.0.1", 0)
    theirs = spawn_peer("udp-send", "127.0.0.1", to_theirs.info["lport"], user="nobody")
    ours = spawn_peer("udp-send", "127.0.0.1", to_ours.info["lport"])
    for receiver in (to_theirs, to_ours):
        assert receiver.wait_for(lambda c: int(c.get("received", 0)) > 10)  # type: ignore[call-overload]

    app = dashboard(kernel)
    async with app.run_test(size=(160, 45), message_hook=notes.hook) as pilot:
        table, jails = app.main.query_one(ProcessTable), app.main.query_one(JailsPanel)
        await ready(pilot, app)
        await find(pilot, table, theirs.pid)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")
        await pilot.press("down")  # strategy: owner; the scope becomes the process's user or group
        scope = app.screen.query_one("#scope", OptionList)
        assert str(scope.get_option_at_index(0).prompt).startswith("user nobody (uid 65534)")
        assert str(scope.get_option_at_index(1).prompt).startswith("group nogroup (gid 65534)")
        before = uid_pids(65534)
        await pilot.press("enter")

        # nothing is blocked before the list of affected processes was shown
        await wait_until(pilot, lambda: isinstance(app.screen, OwnerPreviewDialog), what="owner preview")
        preview = app.screen
        assert isinstance(preview, OwnerPreviewDialog)
        assert preview.who == "user nobody (uid 65534)"
        assert_lists_the_user(set(preview.listed_pids), before, 65534)
        assert theirs.pid in preview.listed_pids and ours.pid not in preview.listed_pids
        assert all(p.uid == 65534 for p in preview.processes)
        assert kernel.jails() == ()
        await pilot.press("enter")

        await wait_until(pilot, lambda: notes.having("jailed in user-nobody"), what="block notification")
        frozen = await settled(pilot, to_theirs)  # packets in flight arrive
        before = to_ours.value("received")
        await sleep_in_app(pilot, 1.5)
        assert to_theirs.value("received") == frozen, "the blocked user's packets still arrive"
        assert to_ours.value("received") > before + 10, "root's sender was blocked too"

        await wait_until(pilot, lambda: "user-nobody" in jails.views, what="jail card")
        view = jails.views["user-nobody"]
        assert view.info.strategy == "owner" and view.countable
        await wait_until(pilot, lambda: count(table.cell_text(theirs.pid, "dropped")) > 0, what="drops")
        assert table.cell_text(theirs.pid, "jail") == middle("user-nobody", 11)
        assert not table.cell_text(ours.pid, "jail")
    assert not notes.having("", "error"), notes.seen


async def test_owner_preview_cancel_blocks_nothing(
    kernel: Engine, spawn_peer: Callable[..., Peer], notes: Notes
) -> None:
    theirs = spawn_peer("udp-bind", "127.0.0.1", 0, user="nobody")
    app = dashboard(kernel)
    async with app.run_test(size=(160, 45), message_hook=notes.hook) as pilot:
        table = app.main.query_one(ProcessTable)
        await ready(pilot, app)
        await find(pilot, table, theirs.pid)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")
        await pilot.press("down", "tab", "down", "enter")  # owner, then its group
        await wait_until(pilot, lambda: isinstance(app.screen, OwnerPreviewDialog), what="owner preview")
        preview = app.screen
        assert isinstance(preview, OwnerPreviewDialog) and preview.who == "group nogroup (gid 65534)"
        assert theirs.pid in preview.listed_pids
        await pilot.press("n")
        await sleep_in_app(pilot, 0.3)
        assert not isinstance(app.screen, OwnerPreviewDialog)
    assert kernel.jails() == ()


async def test_relaunch_under_seccomp_terminates_and_restarts_it_refused(
    kernel: Engine, spawn_peer: Callable[..., Peer], notes: Notes, started: list[int], tmp_path: Path
) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    out, workdir, tag = tmp_path / "probe.jsonl", tmp_path / "work", f"tag-{os.getpid()}"
    workdir.mkdir()
    argv = [sys.executable, str(PROBE), "127.0.0.1", str(recv.info["lport"]), "--out", str(out)]
    probe = subprocess.Popen(
        argv,
        cwd=workdir,
        env={**os.environ, "NETJAIL_PROBE_TAG": tag},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert recv.wait_for(lambda c: int(c.get("received", 0)) > 10)  # type: ignore[call-overload]
        app = dashboard(kernel)
        async with app.run_test(size=(160, 45), message_hook=notes.hook) as pilot:
            table, jails = app.main.query_one(ProcessTable), app.main.query_one(JailsPanel)
            await ready(pilot, app)
            await find(pilot, table, probe.pid)
            await pilot.press("R")
            await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog), what="relaunch dialog")
            await pilot.press("down", "down", "enter")  # seccomp

            # the confirmation says exactly what will happen; nothing has happened yet
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirmation")
            question = str(app.screen.query_one("#question", Static).content)
            name = table.row_of(probe.pid).process.name  # type: ignore[union-attr]
            assert question.startswith(
                f"Terminate PID {probe.pid} ({name}), then start `{shlex.join(argv)}` in {workdir} "
                "as root under seccomp"
            ), question
            # it names the log the command's output will go to (not /dev/null), before anything runs
            named = re.search(r" in jail (\S+), ", question)
            assert named, question
            log = kernel.store.dir / "logs" / f"{named[1]}.log"
            assert question.endswith(f"; output goes to {log}."), question
            assert probe.poll() is None
            await pilot.press("y")

            await wait_until(pilot, lambda: notes.having("started again"), what="relaunch notification")
            ((_, _, text),) = notes.having("started again")
            match = RELAUNCHED.search(text)
            assert match and match[3] == "seccomp", text
            new_pid, jail = int(match[1]), match[2]
            started.append(new_pid)
            assert new_pid != probe.pid and f"PID {probe.pid}" in text
            assert jail == named[1] and text.endswith(f"; output in {log}"), text
            # the engine opened it (0600, a plain file under the checked state directory)
            st = log.lstat()
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
            assert f"netjail relaunch [seccomp] jail {jail}: " in log.read_text()

            # the old process is gone; the new one has its cwd but not its environment (a user's
            # LD_PRELOAD must not follow it), its sends refused
            assert probe.wait(5) == -signal.SIGTERM
            assert not Path(f"/proc/{probe.pid}").exists()
            await wait_until(pilot, lambda: last_count(out, new_pid)["errors"] >= 10, what="refused sends")
            (first,) = [r for r in reports(out, new_pid) if "cwd" in r]
            assert first["cwd"] == str(workdir) and first["tag"] is None
            assert last_count(out, new_pid)["sent"] == 0
            assert last_count(out, new_pid)["errno"] == errno.EACCES
            frozen = recv.value("received")
            await sleep_in_app(pilot, 1.0)
            assert recv.value("received") == frozen

            await wait_until(pilot, lambda: jail in jails.views, what="jail card")
            assert jails.views[jail].info.strategy == "seccomp" and not jails.views[jail].countable
            assert [m.pid for m in jails.views[jail].info.members] == [new_pid]
            await pilot.press("escape")  # the filter still holds the old PID
            await wait_until(pilot, lambda: table.cell_text(new_pid, "jail") == jail, what="new row jailed")
            assert table.cell_text(new_pid, "dropped") == "n/a" and table.row_of(probe.pid) is None
        assert not notes.having("", "error"), notes.seen
    finally:
        probe.kill()
        probe.wait()

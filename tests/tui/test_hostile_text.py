"""Issue 8 finding 4 in the dashboard: processes named and called with markup, terminal escape
sequences and bytes that are not UTF-8 neither crash netjail-tui (a `[/x]` name raised
MarkupError) nor reach the terminal raw, and `[black on black]` in a command line cannot hide
the rest of the relaunch confirmation. Against pinned data (a fake engine) and against the
real engine with real processes of user nobody.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import replace

from netjail.app.netjail_app import NetjailApp
from netjail.app.tui import create_app
from netjail.backends.engine import Engine
from netjail.backends.errors import ProtectedProcess
from netjail.backends.model import LaunchRequest, LaunchResult, Process, Socket
from netjail.widgets.block_dialog import BlockDialog
from netjail.widgets.confirm_dialog import ConfirmDialog
from netjail.widgets.launch_dialog import LaunchDialog
from netjail.widgets.owner_preview import OwnerPreviewDialog
from netjail.widgets.process_detail import ProcessDetail
from netjail.widgets.process_table import ProcessTable
from netjail.widgets.safe_text import printable
from textual.pilot import Pilot
from textual.widgets import Static

from tests.conftest import Peer
from tests.hostile import HIDE_REST, MARKUP_NAME, NOT_UTF8_NAME, OSC52_NAME, TITLE_AND_CURSOR
from tests.tui.conftest import Notes, sleep_in_app, wait_until
from tests.tui.fakes import PROCESSES, FakeClock, FakeEngine, pinned_netns_names
from tests.tui.rendered import assert_screen_safe, invisible, screen_text, widget_strips, widget_text
from tests.tui.test_block_flow import find

CURL = PROCESSES[4]  # has a socket: listed in the default (networked) view
MARKUP, OSC, BYTES = HOSTILE_PIDS = (3_999_901, 3_999_902, 3_999_903)  # no real process has them

HOSTILE = (
    replace(
        CURL,
        pid=MARKUP,
        start_time=1,
        name=MARKUP_NAME,
        cmdline=(MARKUP_NAME, HIDE_REST, "--tail"),
        user="root",
        uid=0,
        sockets=(Socket("inet6", "tcp", "fd00::5", 40500, "fd00::1", 443, "ESTABLISHED", 99),),
    ),
    replace(
        CURL,
        pid=OSC,
        start_time=2,
        name=OSC52_NAME,
        exe=f"/tmp/{OSC52_NAME}",
        cmdline=(OSC52_NAME, TITLE_AND_CURSOR, HIDE_REST, "--rest-of-it"),
        user="root",
        uid=0,
        cgroup="/user.slice/[bold]\x1b[2J",
    ),
    replace(
        CURL,
        pid=BYTES,
        start_time=3,
        name=NOT_UTF8_NAME,
        cmdline=("evil\u202etxt.exe", "\x9b2J"),
        user="eve\x1b[2J",
        uid=0,
    ),
)


class HostileEngine(FakeEngine):
    """The pinned processes plus hostile ones; checks refuse one PID with a message naming the
    process (as the engine's do) and a relaunch "succeeds" without touching anything."""

    def __init__(self) -> None:
        super().__init__(processes=PROCESSES + HOSTILE)
        self.relaunched: list[int] = []

    def check_target(self, pid: int, start_time: int | None = None, force: bool = False) -> Process:
        process = super().check_target(pid, start_time, force)
        if pid == MARKUP:
            raise ProtectedProcess(f"refusing to block PID {pid} ({process.name}): it is protected")
        return process

    def relaunch(self, pid: int, start_time: int | None, req: LaunchRequest) -> LaunchResult:
        self.relaunched.append(pid)
        return LaunchResult(req.jail or "j", req.strategy, 4_000_000)


def hostile_app(engine: Engine) -> NetjailApp:
    return create_app(
        engine, interval=3600, counters_interval=3600, clock=FakeClock(), netns_names=pinned_netns_names
    )


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def squeezed(text: str) -> str:
    """As `widget_text` reads it: runs of spaces as one."""
    return " ".join(text.split())


def compact(text: str) -> str:
    """Without any whitespace: a word longer than a line is folded inside, not at a space."""
    return "".join(text.split())


async def open_relaunch_confirmation(pilot: Pilot[None], app: NetjailApp) -> ConfirmDialog:
    """`R` on the selected process, seccomp, Enter: the confirmation (nothing done yet)."""
    await pilot.press("R")
    await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog), what="relaunch dialog")
    assert_screen_safe(app)
    await pilot.press("down", "down", "enter")  # seccomp
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirmation")
    await pilot.pause()
    assert isinstance(app.screen, ConfirmDialog)
    return app.screen


def assert_question_whole(dialog: ConfirmDialog, expected_start: str) -> str:
    """The question as drawn: all of it there, every part readable."""
    question = dialog.query_one("#question", Static)
    drawn = widget_text(question)
    assert compact(drawn).startswith(compact(expected_start)), drawn
    # nothing after the markup was eaten: the question ends with the launch log's path
    assert re.search(r"outputgoesto/\S+/logs/[A-Za-z0-9_.-]+\.log\.$", compact(drawn)), drawn
    assert not invisible(widget_strips(question))
    return drawn


async def test_fake_engine_hostile_names_render_escaped_everywhere(notes: Notes) -> None:
    engine = HostileEngine()
    app = hostile_app(engine)
    async with app.run_test(size=(160, 50), message_hook=notes.hook) as pilot:
        await settle(pilot)
        table = app.main.query_one(ProcessTable)
        # the table lists them (before: `[/x]` raised MarkupError and the app exited)
        assert table.cell_text(MARKUP, "name") == MARKUP_NAME
        assert table.cell_text(OSC, "name") == printable(OSC52_NAME)[:17] + "…"
        assert table.cell_text(BYTES, "name") == "bad\\xffname"
        assert table.cell_text(BYTES, "user") == "eve\\x1b…"
        drawn = screen_text(app).splitlines()
        lines = {pid: next(r for r in drawn if f" {pid} " in r) for pid in HOSTILE_PIDS}
        assert f" {MARKUP_NAME} " in lines[MARKUP]  # drawn, not read as a tag
        assert " [fd00::1]:443 " in lines[MARKUP]  # an IPv6 endpoint is no tag either
        assert f" {table.cell_text(OSC, 'name')} " in lines[OSC] and " bad\\xffname " in lines[BYTES]
        assert_screen_safe(app)

        # the detail panel, maximised: every field escaped, nothing hidden
        await find(pilot, table, OSC)
        await pilot.press("enter")
        await pilot.pause()
        detail = app.main.query_one(ProcessDetail)
        body = detail.query_one("#detail-body", Static)
        shown = widget_text(body)
        assert printable(" ".join(HOSTILE[1].cmdline)) in shown
        assert printable(HOSTILE[1].cgroup) in shown and printable(HOSTILE[1].exe) in shown
        assert str(detail.border_title).startswith(f"Process {OSC} ")
        assert not invisible(widget_strips(body))
        assert_screen_safe(app)
        await pilot.press("escape")

        # relaunch: the confirmation is the whole sentence, "as root" included
        dialog = await open_relaunch_confirmation(pilot, app)
        command = printable(shlex.join(HOSTILE[1].cmdline))
        assert HIDE_REST in command
        drawn = assert_question_whole(
            dialog,
            f"Terminate PID {OSC} ({printable(OSC52_NAME)}), then start `{command}` in "
            "an unknown directory as root under seccomp",
        )
        assert f"{HIDE_REST}' --rest-of-it` in an unknown directory as root under seccomp" in drawn
        assert_screen_safe(app)
        await pilot.press("y")
        await wait_until(pilot, lambda: notes.having("started again"), what="relaunch notification")
        assert engine.relaunched == [OSC]
        ((_, _, text),) = notes.having("started again")
        assert text.startswith(f"PID {OSC} {printable(OSC52_NAME)} terminated")
        assert_screen_safe(app)  # the toast too

        # a refusal naming `[/x]`: a notification, not a crash
        await find(pilot, table, MARKUP)
        await pilot.press("b")
        await wait_until(pilot, lambda: notes.having("cannot block", "error"), what="refusal")
        ((_, _, text),) = notes.having("cannot block", "error")
        assert f"({MARKUP_NAME})" in text
        await pilot.pause()
        assert MARKUP_NAME in screen_text(app)
        assert_screen_safe(app)

        # the block dialog, then the owner preview listing every root process, hostile ones too
        await find(pilot, table, BYTES)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")
        await pilot.pause()
        drawn = screen_text(app)
        assert f"{BYTES} bad\\xffname" in drawn and "(eve\\x1b[2J)" in drawn
        assert "evil\\u202etxt.exe \\x9b2J" in drawn
        assert_screen_safe(app)
        await pilot.press("down", "enter")  # owner strategy, user: uid 0
        await wait_until(pilot, lambda: isinstance(app.screen, OwnerPreviewDialog), what="owner preview")
        await pilot.pause()
        preview = app.screen
        assert isinstance(preview, OwnerPreviewDialog) and {MARKUP, OSC, BYTES} <= set(preview.listed_pids)
        drawn = screen_text(app)
        assert MARKUP_NAME in drawn and "\\x1b]52;c;SGVsbG8" in drawn
        assert_screen_safe(app)
        await pilot.press("n")
    assert not notes.having("", "error")[1:], notes.seen  # the one refusal above, nothing else


async def test_real_hostile_processes_of_nobody_against_the_real_engine(
    kernel: Engine, spawn_peer: Callable[..., Peer], notes: Notes
) -> None:
    markup = spawn_peer("named", MARKUP_NAME, HIDE_REST, user="nobody")
    osc = spawn_peer("named", OSC52_NAME, TITLE_AND_CURSOR, HIDE_REST, user="nobody")
    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(160, 50), message_hook=notes.hook) as pilot:
        table = app.main.query_one(ProcessTable)
        await wait_until(pilot, lambda: app.main.strategies is not None, what="setup")
        await wait_until(pilot, lambda: table.row_of(markup.pid) and table.row_of(osc.pid), what="rows")
        await sleep_in_app(pilot, 0.7)  # a few refreshes: the app stays up (before: MarkupError)
        assert app.is_running
        assert table.cell_text(markup.pid, "name") == MARKUP_NAME
        assert table.cell_text(osc.pid, "name") == printable(OSC52_NAME)[:17] + "…"
        assert table.cell_text(osc.pid, "user") == "nobody"

        await find(pilot, table, osc.pid)
        await pilot.press("enter")
        await pilot.pause()
        process = table.row_of(osc.pid).process  # type: ignore[union-attr]
        assert TITLE_AND_CURSOR in process.cmdline  # the engine keeps the raw value
        shown = widget_text(app.main.query_one(ProcessDetail).query_one("#detail-body", Static))
        assert squeezed(printable(" ".join(process.cmdline))) in shown
        assert_screen_safe(app)
        await pilot.press("escape")

        dialog = await open_relaunch_confirmation(pilot, app)
        cwd = os.readlink(f"/proc/{osc.pid}/cwd")
        drawn = assert_question_whole(
            dialog,
            f"Terminate PID {osc.pid} ({printable(OSC52_NAME)}), then start "
            f"`{printable(shlex.join(process.cmdline))}` in {cwd} as nobody under seccomp",
        )
        assert f"{HIDE_REST}' --interval 0.05` in {cwd} as nobody under seccomp" in drawn
        assert_screen_safe(app)
        await pilot.press("n")
        await sleep_in_app(pilot, 0.3)
        assert not isinstance(app.screen, ConfirmDialog)
    assert osc.proc.poll() is None and markup.proc.poll() is None  # nothing was relaunched
    assert not notes.having("", "error"), notes.seen
    assert kernel.jails() == ()

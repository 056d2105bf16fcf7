"""Fuzz (hypothesis): any text as a process's name, command line, user, cgroup, cwd or jail,
through every place that shows it: the process table's cells, the detail panel, the block and
relaunch confirmations, the jails panel, notifications, and the CLI's table formatting and
JSON. Nothing raises, and nothing drawn or printed carries a control character."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from netjail.app.cli_doctor import format_checks
from netjail.app.cli_output import json_text, table
from netjail.app.cli_ps import render_table
from netjail.app.netjail_app import NetjailApp
from netjail.app.process_view import ViewOptions, build_rows
from netjail.app.screens.main import relaunch_question
from netjail.backends.model import (
    Check,
    Counters,
    JailInfo,
    LaunchRequest,
    LaunchResult,
    Member,
    Process,
)
from netjail.widgets.block_dialog import BlockDialog, owner_scopes
from netjail.widgets.confirm_dialog import ConfirmDialog
from netjail.widgets.jails_panel import JailView, describe
from netjail.widgets.launch_dialog import LaunchDialog
from netjail.widgets.process_detail import render_process, title
from netjail.widgets.process_table import ProcessTable
from rich.console import Console, RenderableType
from textual.pilot import Pilot
from textual.widgets._data_table import default_cell_formatter  # what DataTable draws of a cell

from tests.hostile import (
    HIDE_REST,
    MARKUP_NAME,
    NOT_UTF8_NAME,
    OSC52_NAME,
    TITLE_AND_CURSOR,
    assert_terminal_safe,
)
from tests.tui.conftest import Notes, wait_until
from tests.tui.fakes import NETNS, PROCESSES, FakeClock, FakeEngine, pinned_netns_names
from tests.tui.rendered import assert_screen_safe
from tests.tui.test_block_flow import find

FRAGMENTS = (
    MARKUP_NAME,
    OSC52_NAME,
    TITLE_AND_CURSOR,
    HIDE_REST,
    NOT_UTF8_NAME,
    "[",
    "]",
    "\\",
    "[@click=app.quit]quit[/]",
    "[link=file:///etc/shadow]x[/link]",
    "\u202e",
    "\u200b",
    "\x9b",
    "\r",
    "\n",
    "\t",
    "\x00",
    "\udcff",
    "\ud800",
)
ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates and controls included
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=24),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(ANY_CHAR, max_size=4)), max_size=5).map("".join),
)
BASE = PROCESSES[4]  # curl: has a socket, so the networked view lists it


def hostile(pid: int, name: str, user: str, argv: list[str], extra: str = "") -> Process:
    return replace(
        BASE,
        pid=pid,
        start_time=pid,
        name=name,
        user=user,
        cmdline=tuple(argv),
        exe=f"/usr/bin/{extra}",
        cgroup=f"/user.slice/{extra}",
        jail=extra or None,
    )


def rendered(renderable: RenderableType) -> str:
    """What Rich writes for it to a plain (no colour) 100-column output."""
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, force_terminal=False, legacy_windows=False)
    console.print(renderable)
    return out.getvalue()


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    return []


@settings(max_examples=150, deadline=None)
@given(name=TEXT, user=TEXT, argv=st.lists(TEXT, max_size=4), extra=TEXT, cwd=TEXT)
def test_every_renderer_escapes_any_text(name: str, user: str, argv: list[str], extra: str, cwd: str) -> None:
    p = hostile(4242, name, user, argv, extra)

    # the process table's cells (as the table draws them), the detail panel and its title
    (row,) = build_rows([p], ViewOptions(networked_only=False), {extra: 7}, NETNS, {p.netns or 0: extra})
    for cell in row.cells:
        assert not isinstance(cell, str) or cell == "" or cell.isdigit(), cell  # str cells are markup
        assert_terminal_safe(rendered(default_cell_formatter(cell, wrap=False, height=1)), "table cell")
    assert_terminal_safe(rendered(render_process(p, NETNS - 1, extra)), "detail panel")
    assert_terminal_safe(rendered(title(p)), "detail title")

    # the confirmations' text and the owner scopes
    request = LaunchRequest(argv=p.cmdline or ("x",), strategy="seccomp", jail="j1", allow=("10.0.0.0/8",))
    question = relaunch_question(p, request, cwd, Path("/run/netjail/logs/j1.log"))
    assert question.isprintable() and " under seccomp (" in question
    assert question.endswith(
        ", in jail j1, with a minimal environment (not its own); output goes to /run/netjail/logs/j1.log."
    )
    for _, text in owner_scopes(p):
        assert text.isprintable()

    # the jails panel
    jail = JailInfo(extra or "j", "cgroup", (user,), (Member(p.pid, p.start_time, True, name),), Counters())
    assert_terminal_safe(rendered(describe(JailView(jail, None, None, ()))), "jail card")

    # the CLI: ps table, generic table (list, counters, owner preview), doctor, JSON
    assert_terminal_safe(render_table([p], NETNS), "ps")
    assert_terminal_safe(table(["JAIL", "MEMBERS"], [[extra, name], [user, " ".join(argv)]]), "table")
    assert_terminal_safe(format_checks([Check("cgroup2", "warn", cwd)]), "doctor")
    text = json_text(p)
    for value in strings(json.loads(text)):
        value.encode("utf-8")  # strict JSON: no lone surrogate (UnicodeEncodeError otherwise)
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        assert json.loads(text)["name"] == name  # the raw value, control characters and all


class FuzzEngine(FakeEngine):
    """Pinned processes plus fuzzed ones; a relaunch 'succeeds' (so its notification shows)."""

    def relaunch(self, pid: int, start_time: int | None, req: LaunchRequest) -> LaunchResult:
        return LaunchResult(req.jail or "j", req.strategy, 4_100_000)


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def drive(fuzzed: tuple[Process, ...]) -> None:
    notes = Notes()
    app = NetjailApp(FuzzEngine(processes=PROCESSES + fuzzed), 3600, 3600, FakeClock(), pinned_netns_names)
    async with app.run_test(size=(140, 44), message_hook=notes.hook) as pilot:
        await settle(pilot)
        table = app.main.query_one(ProcessTable)
        assert all(table.row_of(p.pid) for p in fuzzed)
        assert_screen_safe(app)
        for p in fuzzed:
            await find(pilot, table, p.pid)
            await pilot.press("enter")  # the detail panel, maximised
            await pilot.pause()
            assert_screen_safe(app)
            await pilot.press("escape", "R")
            if p.cmdline:
                await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog), what="relaunch dialog")
                assert_screen_safe(app)
                await pilot.press("down", "down", "enter")
                await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirmation")
                await pilot.pause()
                assert_screen_safe(app)
                await pilot.press("y")
                await wait_until(pilot, lambda: notes.having("started again"), what="relaunched")
            else:
                await wait_until(pilot, lambda: notes.having("no command line"), what="refusal")
            await pilot.pause()
            assert_screen_safe(app)  # with the notification
            await pilot.press("b")
            await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")
            await pilot.pause()
            assert_screen_safe(app)
            await pilot.press("escape")
            for severity, heading, message in notes.seen:
                assert heading.isprintable() and message.isprintable(), notes.seen
                assert severity != "error" or "no command line" in message, notes.seen
            notes.seen.clear()


# each example runs the whole app (~2 s): few of them, and no shrinking (minutes per failure)
@settings(
    max_examples=3,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.tuples(TEXT, TEXT, st.lists(TEXT, max_size=3), TEXT), min_size=1, max_size=2))
def test_the_dashboard_survives_and_escapes_any_text(specs: list[tuple[str, str, list[str], str]]) -> None:
    fuzzed = tuple(hostile(3_999_911 + i, *spec) for i, spec in enumerate(specs))
    asyncio.run(drive(fuzzed))

"""Snapshot tests: pinned terminal size, pinned data (tests/tui/fakes.py), a fake clock and huge
poll intervals, so each poll happens exactly when the test asks (`r`) and nothing blinks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from netjail.app.netjail_app import NetjailApp
from netjail.app.tui import create_app
from netjail.widgets.block_dialog import BlockDialog
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.fakes import FakeClock, FakeEngine

SIZE = (120, 36)
SnapCompare = Callable[..., bool]


def pinned_app(privileged: bool = True) -> NetjailApp:
    return create_app(
        FakeEngine(privileged=privileged), interval=3600, counters_interval=3600, clock=FakeClock()
    )


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def with_counter_history(pilot: Pilot[None]) -> None:
    """Ten counter reads one (fake) second apart: the jail's rate and sparkline have data."""
    await settle(pilot)
    for _ in range(10):
        await pilot.press("r")
        await settle(pilot)


@pytest.fixture(autouse=True)
def _no_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")


def test_main_screen(snap_compare: SnapCompare) -> None:
    assert snap_compare(pinned_app(), terminal_size=SIZE, run_before=with_counter_history)


def test_tree_view_sorted_by_sockets(snap_compare: SnapCompare) -> None:
    assert snap_compare(pinned_app(), press=["t", "s", "s", "s"], terminal_size=SIZE, run_before=settle)


def test_block_dialog(snap_compare: SnapCompare) -> None:
    async def open_dialog(pilot: Pilot[None]) -> None:
        await with_counter_history(pilot)
        await pilot.press("down", "down", "b")
        await settle(pilot)
        assert isinstance(pilot.app.screen, BlockDialog)
        await pilot.press("tab", "down", "tab", *"10.0.0.0/8, 192.168.1.5:53x")
        pilot.app.screen.query_one("#allow", Input).cursor_blink = False  # the cursor stays drawn

    assert snap_compare(pinned_app(), terminal_size=SIZE, run_before=open_dialog)


def test_help_screen(snap_compare: SnapCompare) -> None:
    assert snap_compare(pinned_app(), press=["question_mark"], terminal_size=SIZE, run_before=settle)


def test_read_only_mode(snap_compare: SnapCompare) -> None:
    async def try_to_block(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)

    assert snap_compare(pinned_app(privileged=False), terminal_size=SIZE, run_before=try_to_block)

"""Snapshot tests: pinned terminal size, pinned data (tests/tui/fakes.py), a fake clock and huge
poll intervals, so each poll happens exactly when the test asks (`r`) and nothing blinks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from netjail.app.netjail_app import NetjailApp
from netjail.app.tui import create_app
from netjail.widgets.block_dialog import BlockDialog
from netjail.widgets.launch_dialog import LaunchDialog
from netjail.widgets.owner_preview import OwnerPreviewDialog
from netjail.widgets.process_table import ProcessTable
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.fakes import FakeClock, FakeEngine, pinned_netns_names

SIZE = (128, 36)  # the table's width: it fits with its border and scrollbar
SnapCompare = Callable[..., bool]


def pinned_app(privileged: bool = True) -> NetjailApp:
    return create_app(
        FakeEngine(privileged=privileged),
        interval=3600,
        counters_interval=3600,
        clock=FakeClock(),
        netns_names=pinned_netns_names,
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
def _pinned_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    # the launch dialog's run-as default (SUDO_USER, else whoever runs the tests)
    monkeypatch.setattr("netjail.app.screens.main.default_user", lambda: "nobody")


def test_main_screen(snap_compare: SnapCompare) -> None:
    assert snap_compare(pinned_app(), terminal_size=SIZE, run_before=with_counter_history)


def _blocked_process_visible(size: tuple[int, int]) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def check(pilot: Pilot[None]) -> None:
        await with_counter_history(pilot)
        table = pilot.app.query_one(ProcessTable)
        assert {"jail", "dropped"} <= set(table.shown_columns), (size, table.shown_columns)
        assert table.cell_text(2388, "jail") == "telemetry" and table.cell_text(2388, "dropped") == "440"
        assert pilot.app.size == size

    return check


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen_at_size(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """A jailed process with its dropped count at every size people run terminals at: 80x24
    folds the panels and drops the low-priority columns, 200x60 shows everything."""
    assert snap_compare(pinned_app(), terminal_size=size, run_before=_blocked_process_visible(size))


def test_main_screen_80x24_panels_unfolded_sorted_by_send(snap_compare: SnapCompare) -> None:
    async def unfold(pilot: Pilot[None]) -> None:
        await with_counter_history(pilot)
        await pilot.press("p", *"ssss", "down", "down")  # p: the panels; s x4: pid > ... > send

    assert snap_compare(pinned_app(), terminal_size=(80, 24), run_before=unfold)


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


def test_help_screen_80x24(snap_compare: SnapCompare) -> None:
    """The help fits an 80-column terminal (wrapped, scrolling), never cut at the right edge."""
    assert snap_compare(pinned_app(), press=["question_mark"], terminal_size=(80, 24), run_before=settle)


def test_read_only_mode(snap_compare: SnapCompare) -> None:
    async def try_to_block(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)

    assert snap_compare(pinned_app(privileged=False), terminal_size=SIZE, run_before=try_to_block)


def test_launch_dialog(snap_compare: SnapCompare) -> None:
    async def open_dialog(pilot: Pilot[None]) -> None:
        await with_counter_history(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(pilot.app.screen, LaunchDialog)
        await pilot.press(
            *"curl -s 'https://example.org/a b'", "tab", "down", "tab", *"10.0.0.0/8, 10.1.2.3:99999"
        )
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False

    assert snap_compare(pinned_app(), terminal_size=SIZE, run_before=open_dialog)


def test_owner_preview(snap_compare: SnapCompare) -> None:
    async def preview_alice(pilot: Pilot[None]) -> None:
        await with_counter_history(pilot)
        await pilot.press("slash", *"curl", "enter", "b")
        await settle(pilot)
        assert isinstance(pilot.app.screen, BlockDialog)
        await pilot.press("down", "tab", "tab", *"10.0.0.0/8", "enter")  # owner, user alice
        await settle(pilot)
        assert isinstance(pilot.app.screen, OwnerPreviewDialog)

    assert snap_compare(pinned_app(), terminal_size=SIZE, run_before=preview_alice)

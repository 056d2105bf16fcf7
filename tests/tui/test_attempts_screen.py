"""The attempts screen (`w`) against the TUI's engine double: what it lists, its sort and filter."""

from __future__ import annotations

from netjail.app.screens.attempts import AttemptsScreen
from netjail.app.tui import create_app
from textual.widgets import DataTable, Input

from tests.tui.conftest import wait_until
from tests.tui.fakes import FakeEngine


async def test_the_attempts_screen_lists_filters_and_sorts_what_the_jails_dropped() -> None:
    """`w` opens every destination the attempts log holds (from the counters poll), on the
    selected process's jail; `s` sorts, `/` filters, esc returns."""
    app = create_app(FakeEngine(), interval=0.2, counters_interval=0.1)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: app.main.attempts, what="the attempts log polled")
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, AttemptsScreen), what="attempts screen")
        screen = app.screen
        assert isinstance(screen, AttemptsScreen)
        table = screen.query_one(DataTable)
        assert table.row_count == 3
        remotes = [str(table.get_row_at(i)[3]) for i in range(table.row_count)]
        assert remotes == ["203.0.113.9:4711", "203.0.113.7:443", "127.0.0.53:53"]  # by count
        assert "upload.vendor.example" in str(table.get_row_at(2)[5])
        await pilot.press("s")  # by last seen
        assert screen.sort == "last"
        await pilot.press("slash", *"443")
        assert screen.query_one(Input).value.endswith("443")
        assert table.row_count == 1 and str(table.get_row_at(0)[3]) == "203.0.113.7:443"
        await pilot.press("enter", "escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, AttemptsScreen), what="back")

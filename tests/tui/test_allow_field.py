"""The dialogs' allow-list field reads what the engine will enforce: one parser (policy.py) for
the CLI, the block dialog and the launch dialog, so what the form shows and sends is what the
rules will hold."""

from __future__ import annotations

import pytest
from netjail.app.tui import create_app
from netjail.widgets.block_dialog import BlockDialog
from netjail.widgets.launch_dialog import LaunchDialog
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.tui.fakes import FakeClock, FakeEngine, pinned_netns_names

# ::ffff:a.b.c.d reaches the wire as IPv4: the engine makes it an IPv4 entry
MAPPED, ENFORCED = "[::ffff:10.0.0.1]:443, 192.168.1.5:53", ("10.0.0.1/32:443", "192.168.1.5/32:53")


def fake_app():  # type: ignore[no-untyped-def]
    return create_app(
        FakeEngine(), interval=3600, counters_interval=3600, clock=FakeClock(), netns_names=pinned_netns_names
    )


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_block_dialog_sends_the_entries_the_engine_enforces(monkeypatch: pytest.MonkeyPatch) -> None:
    app = fake_app()
    async with app.run_test(size=(128, 36)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "b")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, BlockDialog)
        dialog.query_one("#allow", Input).value = MAPPED
        await pilot.pause()
        request = dialog.build_request()
        assert request is not None and request.allow == ENFORCED
        dialog.query_one("#allow", Input).value = "10.0.0.1:http"
        await pilot.pause()
        assert dialog.build_request() is None
        shown = str(dialog.query_one("#allow-error", Static).content)
        assert shown == "bad port in allow entry '10.0.0.1:http': 'http' (1-65535)", shown


async def test_launch_dialog_sends_the_entries_the_engine_enforces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("netjail.app.screens.main.default_user", lambda: "nobody")
    app = fake_app()
    async with app.run_test(size=(128, 36)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, LaunchDialog)
        dialog.query_one("#command", Input).value = "true"
        dialog.query_one("#allow", Input).value = MAPPED
        await pilot.pause()
        request = dialog.build_request()
        assert request is not None and request.allow == ENFORCED

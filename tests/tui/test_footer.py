"""The footer keeps whole keys, the essential ones first, at the widths people have."""

from __future__ import annotations

import pytest
from netjail.widgets.key_footer import KeyFooter
from textual.widgets._footer import FooterKey

from tests.tui.rendered import screen_text
from tests.tui.test_snapshots import pinned_app, settle

ESSENTIAL = ["b Block", "u Unblock", "n Launch", "? Help", "q Quit"]


@pytest.mark.parametrize(
    ("width", "shown"),
    [
        (80, [*ESSENTIAL, "/ Filter", "s Sort", "⏎ Details", "p Panels"]),
        (
            120,
            [*ESSENTIAL, "/ Filter", "s Sort", "⏎ Details", "p Panels", "w Tried", "a All/net", "t Tree"],
        ),
    ],
)
async def test_the_footer_shows_whole_keys_by_priority(width: int, shown: list[str]) -> None:
    app = pinned_app()
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(pilot)
        footer = app.screen.query_one(KeyFooter)
        keys = [f"{k.key_display} {k.description}" for k in footer.query(FooterKey)]
        assert keys == shown
        last = " ".join(screen_text(app).splitlines()[-1].split())
        assert last == " ".join(shown)  # every key drawn whole, nothing cut at the edge


async def test_the_footer_follows_a_resize() -> None:
    app = pinned_app()
    async with app.run_test(size=(120, 24)) as pilot:
        await settle(pilot)
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        footer = app.screen.query_one(KeyFooter)
        assert [k.description for k in footer.query(FooterKey)][-1] == "Panels"
        assert " ".join(screen_text(app).splitlines()[-1].split()).endswith("p Panels")

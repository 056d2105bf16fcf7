"""The layout against the real engine (read-only calls): resizing while a poll is in flight, the
panels' toggle kept for the session, and a paced TCP sender's rate in the table at 80x24."""

from __future__ import annotations

import threading
from collections.abc import Callable

from netjail.app.tui import create_app
from netjail.widgets.process_detail import ProcessDetail
from netjail.widgets.process_table import ProcessTable

from tests.conftest import Peer
from tests.tui.conftest import count, sleep_in_app, wait_until
from tests.tui.test_live import SlowEngine

ALWAYS = {"pid", "name", "jail", "dropped"}
SIZES = ((80, 24), (100, 30), (120, 40), (79, 20), (200, 60), (64, 18), (80, 24))
RATE = 200_000  # bytes a second


async def test_resizing_while_a_poll_is_in_flight_keeps_the_cursor_on_its_process(
    spawn_peer: Callable[..., Peer],
) -> None:
    peers = [spawn_peer("udp-bind", "127.0.0.1", 0) for _ in range(3)]
    engine = SlowEngine(delay=0.0)
    app = create_app(engine, interval=0.05, counters_interval=0.05)
    async with app.run_test(size=(200, 60)) as pilot:
        table = app.main.query_one(ProcessTable)
        await wait_until(pilot, lambda: all(table.row_of(p.pid) for p in peers), timeout=60, what="peers")
        target = peers[1].pid
        table.move_cursor(row=[r.split(":")[0] for r in table.shown_keys].index(str(target)))
        await pilot.pause()
        assert table.selected is not None and table.selected.pid == target
        gate = engine.gate = threading.Event()
        await wait_until(pilot, lambda: engine.held > 0, timeout=60, what="a poll in flight")
        completed = engine.completed
        widths = set()
        for width, height in SIZES:
            await pilot.resize_terminal(width, height)
            await pilot.pause()
            assert engine.in_flight.is_set() and engine.completed == completed  # still in flight
            assert table.selected is not None and table.selected.pid == target, (width, height)
            assert set(table.shown_columns) >= ALWAYS, (width, table.shown_columns)
            assert app.main.panels_shown == (height >= 30), (width, height)
            widths.add(len(table.shown_columns))
        assert len(widths) >= 3  # the sizes really changed which columns show
        engine.gate = None
        gate.set()
        await wait_until(pilot, lambda: engine.completed > completed + 1, timeout=60, what="polls after")
        assert table.selected is not None and table.selected.pid == target
        assert table.cursor_row == [r.split(":")[0] for r in table.shown_keys].index(str(target))


async def test_the_panels_toggle_is_kept_for_the_session(spawn_peer: Callable[..., Peer]) -> None:
    spawn_peer("udp-bind", "127.0.0.1", 0)
    app = create_app(SlowEngine(delay=0.0), interval=0.2, counters_interval=0.2)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = app.main
        table = screen.query_one(ProcessTable)
        await wait_until(pilot, lambda: table.shown_keys, timeout=60, what="first snapshot")
        assert screen.panels_shown
        table_height = table.size.height
        await pilot.press("p")
        assert not screen.panels_shown and table.size.height > table_height
        await pilot.resize_terminal(120, 40)  # room enough, but they were folded on purpose
        await pilot.pause()
        assert not screen.panels_shown
        await pilot.resize_terminal(80, 24)
        await pilot.press("p")  # asked for on a small terminal: there they are
        assert screen.panels_shown
        await pilot.resize_terminal(200, 60)
        await pilot.pause()
        assert screen.panels_shown
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert screen.panels_shown  # the choice outlives every resize
        assert table.size.height >= 8  # the table still gets the larger part: 24 - 5 lines - panels
        await pilot.press("enter")  # the details maximised, then back
        await pilot.press("escape")
        assert screen.panels_shown
        await pilot.press("p")  # folded again: enter still shows the details, through any resize
        await pilot.press("enter")
        detail = screen.query_one(ProcessDetail)
        await pilot.resize_terminal(100, 30)
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert screen.maximized is detail and detail.region.height > 10
        await pilot.press("escape")
        await pilot.pause()
        assert screen.maximized is None and not screen.panels_shown


async def test_a_paced_tcp_sender_shows_its_send_rate_at_80x24(spawn_peer: Callable[..., Peer]) -> None:
    sink = spawn_peer("tcp-sink", "127.0.0.1", 47321)
    sender = spawn_peer("tcp-paced", "127.0.0.1", 47321, RATE, interval=0.02)
    app = create_app(interval=1.0, counters_interval=1.0)  # the dashboard's own engine: it counts
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main.query_one(ProcessTable)
        assert {"send", "recv"} <= set(table.shown_columns)
        await wait_until(pilot, lambda: table.cell_text(sender.pid, "send"), timeout=60, what="a rate")
        await sleep_in_app(pilot, 2.5)  # a rate over a whole second of sending, slow start long past
        sent, received = count(table.cell_text(sender.pid, "send")), count(table.cell_text(sink.pid, "recv"))
        assert abs(sent - RATE) <= 0.2 * RATE, table.cell_text(sender.pid, "send")
        assert abs(received - RATE) <= 0.2 * RATE, table.cell_text(sink.pid, "recv")
        assert count(table.cell_text(sender.pid, "recv")) < 0.01 * RATE

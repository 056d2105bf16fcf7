"""Live refresh against the real engine (read-only calls): polls never overlap, keys are handled
while a poll is in flight, and exited processes leave the table with the cursor on a neighbour."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

from netjail.app.tui import create_app
from netjail.backends.engine import Engine
from netjail.backends.model import Snapshot
from netjail.widgets.process_detail import ProcessDetail
from netjail.widgets.process_table import ProcessTable

from tests.conftest import Peer
from tests.tui.conftest import sleep_in_app, wait_until


class SlowEngine(Engine):
    """The real engine whose snapshot takes `delay` longer; records how many ran at once."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.running = 0
        self.most_at_once = 0
        self.calls = 0
        self.completed = 0
        self.gate: threading.Event | None = None  # when set: polls wait for it instead of `delay`
        self.held = 0  # polls that have waited at the gate
        self.in_flight = threading.Event()
        self._lock = threading.Lock()

    def snapshot(self, *, all_processes: bool = True) -> Snapshot:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.in_flight.set()
        try:
            gate = self.gate
            if gate is not None:
                with self._lock:
                    self.held += 1
                gate.wait(120)
            else:
                time.sleep(self.delay)
            return super().snapshot(all_processes=all_processes)
        finally:
            with self._lock:
                self.completed += 1
                self.running -= 1
                if not self.running:
                    self.in_flight.clear()


async def test_polls_never_overlap_and_keys_do_not_wait(spawn_peer: Callable[..., Peer]) -> None:
    spawn_peer("udp-bind", "127.0.0.1", 0)
    engine = SlowEngine(delay=0.3)
    app = create_app(engine, interval=0.05, counters_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.main.query_one(ProcessTable)
        await wait_until(pilot, lambda: table.shown_keys, timeout=60, what="first snapshot")
        # A poll held in flight until the key has been handled: a key that waited for the
        # poll would never be handled, however slow or fast the machine is.
        gate = engine.gate = threading.Event()
        await wait_until(pilot, lambda: engine.held > 0, timeout=60, what="a poll in flight")
        completed = engine.completed
        # Pilot.press also waits for the process to look idle; watch the key itself instead.
        press = asyncio.create_task(pilot.press("s"))
        deadline = time.monotonic() + 30
        while app.main.options.sort != "name":
            assert time.monotonic() < deadline, "the key waited for the poll in flight"
            await asyncio.sleep(0.005)
        assert engine.completed == completed and engine.in_flight.is_set()
        engine.gate = None
        gate.set()
        await press
        assert "sort name" in str(app.main.query_one("#view-status").render())

        calls = engine.calls
        for _ in range(5):
            await pilot.press("r")  # refresh-now during a poll queues one more, never a second at once
        await sleep_in_app(pilot, 2.0)
        assert engine.most_at_once == 1
        assert engine.calls - calls <= 2.0 / 0.3 + 2


async def test_exited_process_leaves_and_cursor_moves_to_a_neighbour(spawn_peer: Callable[..., Peer]) -> None:
    # an --interval no other test uses, nor this file's run in the other backend's pass (which may
    # run at the same time and sees the same processes): the filter finds exactly these peers
    tag = f"0.04{os.getpid() % 1000:03d}7"
    peers = sorted(
        (spawn_peer("udp-bind", "127.0.0.1", 0, interval=float(tag)) for _ in range(3)), key=lambda p: p.pid
    )
    app = create_app(Engine(), interval=0.2, counters_interval=5)
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.main.query_one(ProcessTable)

        def shown() -> list[int]:
            return [int(k.split(":")[0]) for k in table.shown_keys]

        await wait_until(pilot, lambda: all(table.row_of(p.pid) for p in peers), what="peers listed")
        await pilot.press("slash", *tag, "enter")
        await wait_until(pilot, lambda: shown() == [p.pid for p in peers], what="filter applied")
        await pilot.press("down")
        assert table.selected is not None and table.selected.pid == peers[1].pid

        peers[1].kill()
        await wait_until(pilot, lambda: shown() == [peers[0].pid, peers[2].pid], what="exited row removed")
        assert table.selected is not None and table.selected.pid == peers[2].pid  # the row that followed
        detail = app.main.query_one(ProcessDetail)
        await wait_until(pilot, lambda: str(peers[2].pid) in str(detail.border_title), what="detail follows")

        peers[2].kill()  # the last row goes: the cursor steps back to the one before it
        await wait_until(pilot, lambda: shown() == [peers[0].pid], what="last row removed")
        assert table.selected is not None and table.selected.pid == peers[0].pid
        await wait_until(pilot, lambda: str(peers[0].pid) in str(detail.border_title), what="detail follows")

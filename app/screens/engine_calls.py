"""Every engine call the TUI makes, each in a thread worker that posts a past-tense message.

Nothing here touches a widget: workers run off the event loop and only post messages. A call
that raises leaves its worker in the ERROR state, reported by the screen's one handler by name.
The engine is not thread-safe (its incremental inventory and firewall handles serve one caller at
a time), so calls from different workers take turns on one lock: an action may wait for a poll
in flight, a key never does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from netjail.app.messages import (
    AllReleased,
    CountersPolled,
    HostRead,
    InventoryPolled,
    ProcessBlocked,
    ProcessUnblocked,
    StrategiesRead,
    TargetChecked,
)
from netjail.backends.engine import Engine
from netjail.backends.model import BlockRequest, Process, UnblockRequest
from textual import work
from textual.screen import Screen

# Worker names: the failure handler tells the user which action failed from these.
HOST, STRATEGIES, INVENTORY, COUNTERS = "host info", "strategies", "inventory", "counters"
CHECK, BLOCK, UNBLOCK, RELEASE_ALL = "check", "block", "unblock", "release all"


class EngineCalls(Screen[None]):
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.engine = engine
        self.clock = clock
        self.engine_lock = threading.Lock()
        self._reconciled = False

    @work(thread=True, exit_on_error=False, name=HOST, group="setup")
    def read_host(self) -> None:
        with self.engine_lock:
            host = self.engine.host_info()
        self.post_message(HostRead(host))

    @work(thread=True, exit_on_error=False, name=STRATEGIES, group="setup")
    def read_strategies(self) -> None:
        with self.engine_lock:
            strategies = self.engine.strategies()
        self.post_message(StrategiesRead(strategies))

    @work(thread=True, exit_on_error=False, name=INVENTORY, group="poll")
    def poll_inventory(self, all_processes: bool) -> None:
        with self.engine_lock:
            started = time.perf_counter()
            snapshot = self.engine.snapshot(all_processes=all_processes)
        self.post_message(InventoryPolled(snapshot, all_processes, time.perf_counter() - started))

    @work(thread=True, exit_on_error=False, name=COUNTERS, group="poll")
    def poll_counters(self) -> None:
        # Reconciling (a full process scan under the state lock) is the watcher's job, every
        # second while jails exist: done here too it cost ~100 ms per read at 2000 processes.
        # The first read reconciles, so the panel never starts from a stale registry.
        reconcile, self._reconciled = not self._reconciled, True
        with self.engine_lock:
            counters = self.engine.counters()
            at = self.clock()
            jails = self.engine.jails(reconcile=reconcile)
        self.post_message(CountersPolled(jails, counters, at))

    @work(thread=True, exit_on_error=False, name=CHECK, group="action")
    def check_target(self, process: Process) -> None:
        with self.engine_lock:
            checked = self.engine.check_target(process.pid, process.start_time)
        self.post_message(TargetChecked(checked))

    @work(thread=True, exit_on_error=False, name=BLOCK, group="action")
    def block(self, request: BlockRequest) -> None:
        with self.engine_lock:
            result = self.engine.block(request)
        self.post_message(ProcessBlocked(request, result))

    @work(thread=True, exit_on_error=False, name=UNBLOCK, group="action")
    def unblock(self, process: Process) -> None:
        with self.engine_lock:
            result = self.engine.unblock(UnblockRequest(pid=process.pid))
        self.post_message(ProcessUnblocked(process, result))

    @work(thread=True, exit_on_error=False, name=RELEASE_ALL, group="action")
    def release_all(self) -> None:
        with self.engine_lock:
            result = self.engine.unblock(UnblockRequest(all=True))
        self.post_message(AllReleased(result))

"""Every engine call the TUI makes, each in a thread worker that posts a past-tense message.

Nothing here touches a widget: workers run off the event loop and only post messages. A call
that raises leaves its worker in the ERROR state, reported by the screen's one handler by name.
The engine is not thread-safe (its incremental inventory and firewall handles serve one caller at
a time), so calls from different workers take turns on one lock: an action may wait for a poll
in flight, a key never does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from netjail.app.messages import (
    AllReleased,
    CountersPolled,
    EngineNoted,
    HostRead,
    InventoryPolled,
    Launched,
    OwnerBlocked,
    OwnerPreviewed,
    ProcessBlocked,
    ProcessUnblocked,
    RelaunchChecked,
    Relaunched,
    StrategiesRead,
    TargetChecked,
)
from netjail.app.netns_labels import named_netns
from netjail.backends.engine_api import EngineAPI
from netjail.backends.model import (
    BlockRequest,
    LaunchRequest,
    OwnerBlockRequest,
    Process,
    UnblockRequest,
)
from textual import work
from textual.screen import Screen

# Worker names: the failure handler tells the user which action failed from these.
HOST, STRATEGIES, INVENTORY, COUNTERS = "host info", "strategies", "inventory", "counters"
CHECK, BLOCK, UNBLOCK, RELEASE_ALL = "check", "block", "unblock", "release all"
LAUNCH, PREVIEW_OWNER, BLOCK_OWNER = "launch", "owner preview", "owner block"
CHECK_RELAUNCH, RELAUNCH = "relaunch check", "relaunch"


class EngineCalls(Screen[None]):
    def __init__(
        self,
        engine: EngineAPI,
        clock: Callable[[], float] = time.monotonic,
        netns_names: Callable[[], dict[int, str]] = named_netns,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.clock = clock
        self.read_netns_names = netns_names
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
        seconds = time.perf_counter() - started
        self.post_message(InventoryPolled(snapshot, all_processes, seconds, self.read_netns_names()))

    @work(thread=True, exit_on_error=False, name=COUNTERS, group="poll")
    def poll_counters(self) -> None:
        # Reconciling (a full process scan under the state lock) is the watcher's job, every
        # second while jails exist: done here too it cost ~100 ms per read at 2000 processes.
        # The first read reconciles, so the panel never starts from a stale registry.
        with self.engine_lock:
            counters = self.engine.counters()
            at = self.clock()
            jails = self.engine.jails(reconcile=not self._reconciled, counters=counters)
            attempts = self.engine.attempts(limit=500) if jails else ()
        self._reconciled = True  # only once it worked: a failed first read reconciles next time
        self.post_message(CountersPolled(jails, counters, at, attempts))

    @work(thread=True, exit_on_error=False, name=CHECK, group="action")
    def check_target(self, process: Process) -> None:
        with self.engine_lock:
            checked = self.engine.check_target(process.pid, process.start_time)
        self.post_message(TargetChecked(checked))

    @work(thread=True, exit_on_error=False, name=BLOCK, group="action")
    def block(self, request: BlockRequest) -> None:
        with self.engine_lock:
            result = self.engine.block(request)
            self._post_notes(result.notes)
        self.post_message(ProcessBlocked(request, result))

    @work(thread=True, exit_on_error=False, name=UNBLOCK, group="action")
    def unblock(self, process: Process, whole_jail: bool = False) -> None:
        request = UnblockRequest(jail=process.jail) if whole_jail else UnblockRequest(pid=process.pid)
        with self.engine_lock:
            result = self.engine.unblock(request)
            self._post_notes(result.notes)
        self.post_message(ProcessUnblocked(process, result))

    def _post_notes(self, notes: tuple[str, ...]) -> None:
        """Before the result's own message: the notes say what happened on the way to it."""
        if notes:
            self.post_message(EngineNoted(list(notes)))

    @work(thread=True, exit_on_error=False, name=RELEASE_ALL, group="action")
    def release_all(self) -> None:
        with self.engine_lock:
            result = self.engine.unblock(UnblockRequest(all=True))
            self._post_notes(result.notes)
        self.post_message(AllReleased(result))

    @work(thread=True, exit_on_error=False, name=LAUNCH, group="action")
    def launch(self, request: LaunchRequest) -> None:
        with self.engine_lock:  # the engine opens the jail's log (O_NOFOLLOW, root's 0700 dir)
            result, proc = self.engine.launch(request, detached=True)
        # the command is our child: something must wait for it, or it lingers as a zombie
        threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
        self.post_message(Launched(request, result, Path(result.log)))

    @work(thread=True, exit_on_error=False, name=PREVIEW_OWNER, group="action")
    def preview_owner(self, request: OwnerBlockRequest) -> None:
        with self.engine_lock:
            processes = self.engine.preview_owner(request.user, request.group)
        self.post_message(OwnerPreviewed(request, processes))

    @work(thread=True, exit_on_error=False, name=BLOCK_OWNER, group="action")
    def block_owner(self, request: OwnerBlockRequest) -> None:
        with self.engine_lock:
            result = self.engine.block_owner(request)
            self._post_notes(result.notes)
        self.post_message(OwnerBlocked(request, result))

    @work(thread=True, exit_on_error=False, name=CHECK_RELAUNCH, group="action")
    def check_relaunch(self, process: Process) -> None:
        with self.engine_lock:
            checked = self.engine.check_target(process.pid, process.start_time)
        try:
            cwd: str | None = os.readlink(f"/proc/{checked.pid}/cwd")
        except OSError:
            cwd = None
        self.post_message(RelaunchChecked(checked, cwd))

    @work(thread=True, exit_on_error=False, name=RELAUNCH, group="action")
    def relaunch(self, process: Process, request: LaunchRequest) -> None:
        with self.engine_lock:
            result = self.engine.relaunch(process.pid, process.start_time, request)
        self.post_message(Relaunched(process, result))

"""The dashboard: processes, the selected one's details and the jails, kept live by two pollers.

Widgets render what this screen hands them and post intents; this screen turns intents into
engine calls (thread workers, see engine_calls) and their past-tense results into notifications.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from netjail.app.counter_history import CounterHistory
from netjail.app.errors import one_line
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
from netjail.app.polling import Poller
from netjail.app.process_view import DESCENDING, ViewOptions, build_rows, dropped_cell, next_sort
from netjail.app.screens.engine_calls import BLOCK, CHECK, HOST, RELEASE_ALL, STRATEGIES, UNBLOCK, EngineCalls
from netjail.backends.engine import Engine
from netjail.backends.model import BlockRequest, HostInfo, JailCounters, JailInfo, Snapshot, StrategyInfo
from netjail.widgets.block_dialog import BlockDialog
from netjail.widgets.confirm_dialog import ConfirmDialog
from netjail.widgets.header import READ_ONLY_TEXT, HostHeader
from netjail.widgets.jails_panel import JailsPanel, JailView
from netjail.widgets.process_detail import ProcessDetail
from netjail.widgets.process_table import ProcessTable
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

FAILED = {
    CHECK: "cannot block",
    BLOCK: "block failed",
    UNBLOCK: "unblock failed",
    RELEASE_ALL: "release all failed",
}


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}{'es' if word.endswith('s') else 's'}"


class MainScreen(EngineCalls):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("a", "toggle_all", "All/net"),
        Binding("t", "toggle_tree", "Tree"),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("exclamation_mark,ctrl+x", "release_all", "Release all"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(
        self,
        engine: Engine,
        interval: float = 1.0,
        counters_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(engine, clock)
        self.options = ViewOptions()
        self.host: HostInfo | None = None
        self.host_error: str | None = None
        self.strategies: tuple[StrategyInfo, ...] | None = None
        self.strategies_error: str | None = None
        self.snapshot: Snapshot | None = None
        self.snapshot_all = False  # whether self.snapshot holds every process
        self.jails: tuple[JailInfo, ...] = ()
        self.counters: dict[str, JailCounters] = {}
        self.dropped: dict[str, int] = {}
        self.shown = 0  # rows in the table
        self.history = CounterHistory(counters_interval)
        self.inventory = Poller(self, lambda: self.poll_inventory(self._needs_all()), interval)
        self.counters_poll = Poller(self, self.poll_counters, counters_interval)

    def compose(self) -> ComposeResult:
        yield HostHeader(id="header")
        yield Static(READ_ONLY_TEXT, id="read-only")
        with Horizontal(id="toolbar"):
            yield Input(placeholder="/ filter: pid, name, port…", id="filter", compact=True)
            yield Static("", id="view-status")
        yield Static("", id="inventory-error", classes="source-error")
        yield ProcessTable(id="processes")
        with Horizontal(id="bottom"):
            yield ProcessDetail(id="detail")
            yield JailsPanel(id="jails")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#processes").border_title = "Processes"
        self.query_one("#detail").border_title = "Process"
        self.query_one("#jails").border_title = "Jails"
        self._render_status()
        self.read_host()
        self.read_strategies()
        self.inventory.start()
        self.counters_poll.start()
        self.query_one(ProcessTable).focus()

    def on_unmount(self) -> None:
        self.inventory.stop()
        self.counters_poll.stop()

    # ---- data in -----------------------------------------------------------------------------

    def on_host_read(self, message: HostRead) -> None:
        self.host, self.host_error = message.host, None
        self.query_one(HostHeader).show_host(message.host)
        self.query_one("#read-only").display = not message.host.privileged
        self.set_class(not message.host.privileged, "read-only")

    def on_strategies_read(self, message: StrategiesRead) -> None:
        self.strategies, self.strategies_error = message.strategies, None

    def on_inventory_polled(self, message: InventoryPolled) -> None:
        self.snapshot, self.snapshot_all = message.snapshot, message.all_processes
        self._show_source_error("#inventory-error", None)
        self.apply_view()

    def on_counters_polled(self, message: CountersPolled) -> None:
        self.history.record(message.counters, message.at)
        self.jails = message.jails
        self.counters = {c.jail: c for c in message.counters}
        dropped = {j.name: j.counters.dropped_packets for j in message.jails}
        dropped.update({c.jail: c.total.dropped_packets for c in message.counters})
        views = [
            JailView(j, self.counters.get(j.name), self.history.rate(j.name), self.history.rates(j.name))
            for j in message.jails
        ]
        jails_panel = self.query_one(JailsPanel)
        jails_panel.show_error(None)
        jails_panel.show_jails(views)
        self._render_status()  # the jail count
        if dropped != self.dropped:
            self.dropped = dropped
            if self.options.sort == "dropped":
                self.apply_view()  # the order may change
            else:  # only jailed rows show a count: leave the other rows alone
                table = self.query_one(ProcessTable)
                table.set_column(
                    "dropped", {r.key: dropped_cell(r.process, dropped) for r in table.jailed_rows}
                )

    def apply_view(self) -> None:
        """Render the last snapshot through the current view options (no engine call)."""
        if self.snapshot is not None:
            snap = self.snapshot
            rows = build_rows(snap.processes, self.options, self.dropped, snap.own_netns)
            self.query_one(ProcessTable).show_rows(rows)
            self.shown = len(rows)
            self._render_status()

    def _render_status(self) -> None:
        o = self.options
        arrow = "▼" if o.sort in DESCENDING else "▲"
        parts = [
            f"sort {o.sort} {arrow}",
            "all" if not o.networked_only else "networked",
            "tree" if o.tree else "list",
        ]
        snap = self.snapshot
        if snap is not None:
            sockets = sum(len(p.sockets) for p in snap.processes)
            parts[:0] = [
                f"{self.shown} of {_plural(len(snap.processes), 'process')}",
                _plural(sockets, "socket"),
                _plural(len(self.jails), "jail"),
            ]
            if snap.denied:
                parts.append(f"{len(snap.denied)} unreadable")
        self.query_one("#view-status", Static).update(" · ".join(parts))
        self.query_one(ProcessTable).set_sort_indicator(o.sort, o.sort in DESCENDING)

    def _show_source_error(self, selector: str, error: str | None) -> None:
        widget = self.query_one(selector, Static)
        widget.update(error or "")
        widget.display = bool(error)

    @on(ProcessTable.Selected)
    def _selected(self, event: ProcessTable.Selected) -> None:
        own_netns = self.snapshot.own_netns if self.snapshot else None
        self.query_one(ProcessDetail).show(event.process, own_netns)

    # ---- failures ----------------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker, state = event.worker, event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        error = one_line(worker.error) if state == WorkerState.ERROR else None
        if self.inventory.owns(worker):
            delay = self.inventory.finished(error is None)
            if error:
                self._show_source_error(
                    "#inventory-error",
                    f"inventory: {error} (retrying in {delay:.0f}s; showing the last good data)",
                )
        elif self.counters_poll.owns(worker):
            delay = self.counters_poll.finished(error is None)
            if error:
                self.query_one(JailsPanel).show_error(f"{error} (retrying in {delay:.0f}s)")
        elif error and worker.name == HOST:
            self.host_error = error
            self.query_one(HostHeader).show_host(None, error)
        elif error and worker.name == STRATEGIES:
            self.strategies_error = error
        elif error:
            what = FAILED.get(worker.name, f"{worker.name} failed")
            self.notify(f"{what}: {error}", title="netjail", severity="error", timeout=8)

    # ---- intents -----------------------------------------------------------------------------

    def _may_act(self, what: str) -> bool:
        if self.host is None and self.host_error is None:
            self.notify("still reading host information, try again in a moment", severity="warning")
            return False
        if self.host is not None and not self.host.privileged:
            self.notify(
                f"{what} is disabled in read-only mode: netjail-tui is not running as root",
                title="read-only",
                severity="warning",
            )
            return False
        return True

    @on(ProcessTable.BlockRequested)
    def _block_requested(self, event: ProcessTable.BlockRequested) -> None:
        if not self._may_act("block"):
            return
        if self.strategies is None:
            reason = self.strategies_error or "still reading them"
            self.notify(f"cannot block: jail strategies unavailable ({reason})", severity="error")
            return
        self.check_target(event.process)

    def on_target_checked(self, message: TargetChecked) -> None:
        self.app.push_screen(BlockDialog(message.process, self.strategies or ()), self._block_dialog_closed)

    def _block_dialog_closed(self, request: BlockRequest | None) -> None:
        if request is not None:
            self.block(request)

    def on_process_blocked(self, message: ProcessBlocked) -> None:
        r = message.result
        alive = [m for m in r.members if m.alive]
        killed = f", {_plural(r.killed_connections, 'connection')} killed" if r.killed_connections else ""
        self.notify(
            f"PID {message.request.pid} jailed in {r.jail} ({r.strategy}): {_plural(len(alive), 'member')}, "
            f"{_plural(r.socket_rules, 'socket rule')}{killed}",
            title="blocked",
        )
        self._refresh_sources()

    @on(ProcessTable.UnblockRequested)
    def _unblock_requested(self, event: ProcessTable.UnblockRequested) -> None:
        if not self._may_act("unblock"):
            return
        if event.process.jail is None:
            self.notify(f"PID {event.process.pid} is not jailed", severity="warning")
            return
        self.unblock(event.process)

    def on_process_unblocked(self, message: ProcessUnblocked) -> None:
        r = message.result
        removed = f"; jail {', '.join(r.removed_jails)} removed" if r.removed_jails else ""
        self.notify(f"PID {message.process.pid} {message.process.name} released{removed}", title="unblocked")
        self._refresh_sources()

    @on(ProcessTable.DetailsRequested)
    def _details_requested(self) -> None:
        detail = self.query_one(ProcessDetail)
        self.maximize(detail, container=False)
        detail.focus()

    def on_all_released(self, message: AllReleased) -> None:
        r = message.result
        released, removed = _plural(len(r.released), "process"), _plural(len(r.removed_jails), "jail")
        self.notify(f"released {released}, removed {removed}", title="release all")
        self._refresh_sources()

    def _refresh_sources(self) -> None:
        self.inventory.poke()
        self.counters_poll.poke()

    # ---- actions -----------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.minimize()
        self.query_one("#filter", Input).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._set_options(query=event.value.strip())

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        table = self.query_one(ProcessTable)
        table.focus()
        table.move_to_top()

    def minimize(self) -> None:
        """Also reached from Textual's own escape-to-minimize: the table gets the focus back."""
        super().minimize()
        self.query_one(ProcessTable).focus()

    def action_back(self) -> None:
        """Esc: leave the maximised details, else clear the filter; focus returns to the table."""
        if self.maximized is not None:
            self.minimize()
        else:
            self.query_one("#filter", Input).value = ""
        self.query_one(ProcessTable).focus()

    def _set_options(self, **changes: Any) -> None:
        self.options = replace(self.options, **changes)
        self._render_status()
        self.apply_view()

    def action_cycle_sort(self) -> None:
        self._set_options(sort=next_sort(self.options.sort))

    def _needs_all(self) -> bool:
        """Every process, not only networked ones: to list them, or to draw the tree's ancestors."""
        return not self.options.networked_only or self.options.tree

    def _ensure_snapshot_covers_view(self) -> None:
        if self._needs_all() and not self.snapshot_all:
            self.inventory.poke()

    def action_toggle_tree(self) -> None:
        self._set_options(tree=not self.options.tree)
        self._ensure_snapshot_covers_view()

    def action_toggle_all(self) -> None:
        self._set_options(networked_only=not self.options.networked_only)
        self._ensure_snapshot_covers_view()

    def action_refresh(self) -> None:
        self._refresh_sources()

    def action_release_all(self) -> None:
        if not self._may_act("release all"):
            return
        question = (
            f"Release every jailed process ({_plural(len(self.jails), 'jail')}) and remove netjail's "
            "rules and cgroups?"
        )
        self.app.push_screen(
            ConfirmDialog("Release all jails", question, yes="Release all"), self._release_confirmed
        )

    def _release_confirmed(self, yes: bool | None) -> None:
        if yes:
            self.release_all()

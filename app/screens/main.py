"""The dashboard: processes, the selected one's details and the jails, kept live by two pollers.

Widgets render what this screen hands them and post intents; this screen turns intents into
engine calls (thread workers, see engine_calls) and their past-tense results into notifications.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from netjail.app.counter_history import CounterHistory
from netjail.app.errors import one_line
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
from netjail.app.netns_labels import named_netns, netns_label
from netjail.app.polling import Poller
from netjail.app.process_columns import COLUMNS
from netjail.app.process_view import DESCENDING, ViewOptions, build_rows, dropped_cell, next_sort
from netjail.app.screens.engine_calls import (
    BLOCK,
    BLOCK_OWNER,
    CHECK,
    CHECK_RELAUNCH,
    HOST,
    LAUNCH,
    PREVIEW_OWNER,
    RELAUNCH,
    RELEASE_ALL,
    STRATEGIES,
    UNBLOCK,
    EngineCalls,
)
from netjail.backends.attempts.store import AttemptRow
from netjail.backends.engine_api import EngineAPI
from netjail.backends.launch.credentials import default_user
from netjail.backends.model import (
    BlockRequest,
    HostInfo,
    JailCounters,
    JailInfo,
    LaunchRequest,
    OwnerBlockRequest,
    Process,
    Snapshot,
    StrategyInfo,
)
from netjail.widgets.block_dialog import BlockDialog, owner_scopes
from netjail.widgets.confirm_dialog import ConfirmDialog
from netjail.widgets.fit import Part, fit_parts
from netjail.widgets.header import READ_ONLY_TEXT, HostHeader
from netjail.widgets.jails_panel import JailsPanel, JailView
from netjail.widgets.key_footer import KeyFooter
from netjail.widgets.launch_dialog import LaunchDialog
from netjail.widgets.owner_preview import OwnerPreviewDialog
from netjail.widgets.process_detail import ProcessDetail
from netjail.widgets.process_table import ProcessTable
from netjail.widgets.safe_text import printable
from rich.text import Text
from textual import events, on
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
    LAUNCH: "launch failed",
    PREVIEW_OWNER: "cannot list the affected processes",
    BLOCK_OWNER: "block failed",
    CHECK_RELAUNCH: "cannot relaunch",
    RELAUNCH: "relaunch failed",
}
DETAIL_ATTEMPTS = 6  # destinations a jailed process's detail lists
PANELS_MIN_HEIGHT = 30  # below this the detail and jails panels fold away until `p`
PANELS_MIN_LINES, PANELS_MAX_LINES = 6, 15
NARROW_WIDTH = 100  # below this the filter box is narrower
FILTER_HINT = "/ filter: pid, name, port…"


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
        Binding("p", "toggle_panels", "Panels"),
        Binding("w", "attempts", "Tried"),
        Binding("n", "launch", "Launch"),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("exclamation_mark,ctrl+x", "release_all", "Release all"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(
        self,
        engine: EngineAPI,
        interval: float = 1.0,
        counters_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        netns_names: Callable[[], dict[int, str]] = named_netns,
    ) -> None:
        super().__init__(engine, clock, netns_names)
        self.options = ViewOptions()
        self.host: HostInfo | None = None
        self.host_error: str | None = None
        self.strategies: tuple[StrategyInfo, ...] | None = None
        self.strategies_error: str | None = None
        self.snapshot: Snapshot | None = None
        self.snapshot_all = False  # whether self.snapshot holds every process
        self.netns_names: dict[int, str] = {}  # namespace inode -> `ip netns` name
        self.jails: tuple[JailInfo, ...] = ()
        self.counters: dict[str, JailCounters] = {}
        self.attempts: dict[str, list[AttemptRow]] = {}  # the attempts log, per jail
        self.dropped: dict[str, int | None] = {}  # None: the jail cannot be counted
        self._block_target: Process | None = None
        self.shown = 0  # rows in the table
        self.history = CounterHistory(counters_interval)
        self.inventory = Poller(self, lambda: self.poll_inventory(self._needs_all()), interval)
        self.counters_poll = Poller(self, self.poll_counters, counters_interval)
        # the detail and jails panels: None follows the terminal's height; `p` makes it a
        # choice kept for the rest of the session, whatever the size becomes
        self.panels_choice: bool | None = None

    def compose(self) -> ComposeResult:
        yield HostHeader(id="header")
        yield Static(READ_ONLY_TEXT, id="read-only")
        with Horizontal(id="toolbar"):
            yield Input(placeholder=FILTER_HINT, id="filter", compact=True)
            yield Static("", id="view-status")
        yield Static("", id="inventory-error", classes="source-error")
        yield ProcessTable(COLUMNS, id="processes")
        with Horizontal(id="bottom"):
            yield ProcessDetail(id="detail")
            yield JailsPanel(id="jails")
        yield KeyFooter()

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

    def on_resize(self, event: events.Resize) -> None:
        self.fit_layout()
        self.call_after_refresh(self._render_status)  # once the status has its new width

    def fit_layout(self) -> None:
        """The table keeps most of the height: the panels fold away below PANELS_MIN_HEIGHT
        lines (unless asked for with `p`) and take at most a third of the screen."""
        height = self.size.height
        show = self.panels_choice if self.panels_choice is not None else height >= PANELS_MIN_HEIGHT
        show = show or self.maximized is not None  # the details full screen live in there
        bottom = self.query_one("#bottom")
        bottom.display = show
        if show:
            bottom.styles.height = max(PANELS_MIN_LINES, min(PANELS_MAX_LINES, (height - 5) // 3))
        narrow = self.size.width < NARROW_WIDTH
        self.set_class(narrow, "narrow")
        self.query_one("#filter", Input).placeholder = "/ filter: pid, name…" if narrow else FILTER_HINT
        self.query_one(Footer).compact = narrow  # more keys in fewer columns

    @property
    def panels_shown(self) -> bool:
        return bool(self.query_one("#bottom").display)

    def action_attempts(self) -> None:
        """What the jails dropped, full screen; opened on the selected process's jail."""
        from netjail.app.screens.attempts import AttemptsScreen

        selected = self.query_one(ProcessDetail).process
        rows = [r for rows in self.attempts.values() for r in rows]
        self.app.push_screen(AttemptsScreen(rows, selected.jail if selected and selected.jail else None))

    def action_toggle_panels(self) -> None:
        if self.maximized is not None:
            self.minimize()
        self.panels_choice = not self.panels_shown
        self.fit_layout()

    def on_unmount(self) -> None:
        self.inventory.stop()
        self.counters_poll.stop()

    # ---- data in -----------------------------------------------------------------------------

    def on_engine_noted(self, message: EngineNoted) -> None:
        for note in message.notes:
            self.notify(note, title="netjail", severity="warning", timeout=10)

    def on_host_read(self, message: HostRead) -> None:
        self.host, self.host_error = message.host, None
        self.query_one(HostHeader).show_host(message.host)
        self.query_one("#read-only").display = not message.host.privileged
        self.set_class(not message.host.privileged, "read-only")
        if not message.host.privileged:
            # the counters live in root's firewall tables: asking again every few seconds
            # cannot succeed; jail names still show in the table (from the cgroup paths)
            self.counters_poll.stop()
            self.query_one(JailsPanel).show_error("jails and their counters need root (read-only mode)")

    def on_strategies_read(self, message: StrategiesRead) -> None:
        self.strategies, self.strategies_error = message.strategies, None

    def on_inventory_polled(self, message: InventoryPolled) -> None:
        self.snapshot, self.snapshot_all = message.snapshot, message.all_processes
        self.netns_names = message.netns_names
        self._show_source_error("#inventory-error", None)
        self.apply_view()

    def on_counters_polled(self, message: CountersPolled) -> None:
        self.history.record(message.counters, message.at)
        by_jail: dict[str, list[AttemptRow]] = {}
        for row in message.attempts:
            by_jail.setdefault(row.jail, []).append(row)
        if by_jail != self.attempts:
            self.attempts = by_jail
            self._show_detail(self.query_one(ProcessDetail).process)
        from netjail.app.screens.attempts import AttemptsScreen

        if isinstance(self.app.screen, AttemptsScreen):
            self.app.screen.show(message.attempts)
        self.jails = message.jails
        self.counters = {c.jail: c for c in message.counters}
        dropped: dict[str, int | None] = {j.name: j.counters.dropped_packets for j in message.jails}
        dropped.update({c.jail: c.total.dropped_packets for c in message.counters})
        views = []
        for j in message.jails:
            countable = self._countable(j)
            if not countable:
                dropped[j.name] = None
            rate, history = self.history.rate(j.name), self.history.rates(j.name)
            views.append(JailView(j, self.counters.get(j.name), rate, history, countable))
        jails_panel = self.query_one(JailsPanel)
        jails_panel.show_error(None)
        jails_panel.show_jails(views)
        self._render_status()  # the jail count
        self._ensure_snapshot_covers_view()
        if dropped != self.dropped:
            self.dropped = dropped
            if self.options.sort == "dropped":
                self.apply_view()  # the order may change
            else:  # only jailed rows show a count: leave the other rows alone
                table = self.query_one(ProcessTable)
                table.set_column(
                    "dropped", {r.key: dropped_cell(r.process, dropped) for r in table.jailed_rows}
                )

    def _countable(self, jail: JailInfo) -> bool:
        """Whether netfilter sees the jail's traffic: the strategy says (seccomp: never), and so
        may the counters source."""
        counters = self.counters.get(jail.name)
        if counters is not None and not counters.countable:
            return False
        strategy = next((s for s in self.strategies or () if s.name == jail.strategy), None)
        return strategy is None or strategy.counters

    def netns_of(self, process: Process) -> str:
        """The process's namespace label as the table shows it ("" in netjail's own)."""
        own = self.snapshot.own_netns if self.snapshot else None
        return netns_label(process.netns, own, self.netns_names)

    def apply_view(self) -> None:
        """Render the last snapshot through the current view options (no engine call)."""
        if self.snapshot is not None:
            snap = self.snapshot
            rows = build_rows(snap.processes, self.options, self.dropped, snap.own_netns, self.netns_names)
            self.query_one(ProcessTable).show_rows(rows)
            self.shown = len(rows)
            self._render_status()

    def _render_status(self) -> None:
        o = self.options
        status = self.query_one("#view-status", Static)
        status.update(status_line(o, self.snapshot, self.shown, len(self.jails), status.content_size.width))
        self.query_one(ProcessTable).set_sort_indicator(o.sort, o.sort in DESCENDING)

    def _show_source_error(self, selector: str, error: str | None) -> None:
        widget = self.query_one(selector, Static)
        widget.update(Text(printable(error or "")))  # errors quote paths and names: not markup
        widget.display = bool(error)

    @on(ProcessTable.Selected)
    def _selected(self, event: ProcessTable.Selected) -> None:
        self._show_detail(event.process)

    def _show_detail(self, process: Process | None) -> None:
        own_netns = self.snapshot.own_netns if self.snapshot else None
        name = self.netns_names.get(process.netns, "") if process and process.netns else ""
        tried = self.attempts.get(process.jail, []) if process and process.jail else []
        self.query_one(ProcessDetail).show(process, own_netns, name, tried[:DETAIL_ATTEMPTS], time.time())

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
            if error and self.counters_poll.active:
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
        if self.app.screen is not self:
            return  # a dialog is open already (a key pressed twice while a poll held the engine)
        self._block_target = message.process
        self.app.push_screen(BlockDialog(message.process, self.strategies or ()), self._block_dialog_closed)

    def _block_dialog_closed(self, request: BlockRequest | OwnerBlockRequest | None) -> None:
        if isinstance(request, OwnerBlockRequest):
            self.preview_owner(request)  # nothing is blocked before the list was seen
        elif request is not None:
            self.block(request)

    def _owner_label(self, request: OwnerBlockRequest) -> str:
        kind = "user" if request.user is not None else "group"
        scopes = dict(owner_scopes(self._block_target)) if self._block_target else {}
        text = scopes.get(kind)
        return text.split(":")[0] if text else f"{kind} {request.user or request.group}"

    def on_owner_previewed(self, message: OwnerPreviewed) -> None:
        request = message.request
        allow = [*request.allow, *(["loopback"] if request.allow_loopback else [])]

        def closed(yes: bool | None) -> None:
            if yes:
                self.block_owner(request)

        own = self.snapshot.own_netns if self.snapshot else None
        dialog = OwnerPreviewDialog(self._owner_label(request), message.processes, allow, own)
        self.app.push_screen(dialog, closed)

    def on_owner_blocked(self, message: OwnerBlocked) -> None:
        r, request = message.result, message.request
        who = self._owner_label(request)
        self.notify(
            f"{who} jailed in {r.jail} (owner): {_plural(len(r.members), 'process')} now, and every one "
            f"it starts later",
            title="blocked",
        )
        self._refresh_sources()

    def on_process_blocked(self, message: ProcessBlocked) -> None:
        r = message.result
        alive = [m for m in r.members if m.alive]
        killed = f", {_plural(r.killed_connections, 'connection')} killed" if r.killed_connections else ""
        self.notify(
            f"PID {message.request.pid} jailed in {r.jail} ({r.strategy}): {_plural(len(alive), 'member')}, "
            f"{_plural(r.marked_sockets, 'socket')} marked"
            + (f", {_plural(r.set_entries, 'socket')} in fallback sets" if r.set_entries else "")
            + killed,
            title="blocked",
        )
        if r.unfilterable or r.shared:
            from netjail.backends.jails.block_report import result_lines

            for line in result_lines(r):
                self.notify(line, title="not fully blocked", severity="warning", timeout=15)
        self._refresh_sources()

    @on(ProcessTable.UnblockRequested)
    def _unblock_requested(self, event: ProcessTable.UnblockRequested) -> None:
        if not self._may_act("unblock"):
            return
        if event.process.jail is None:
            self.notify(f"PID {event.process.pid} is not jailed", severity="warning")
            return
        jail = next((j for j in self.jails if j.name == event.process.jail), None)
        from netjail.backends.jails.strategies import by_name

        info = by_name(jail.strategy) if jail else None
        if jail is None or (info is not None and info.member_release):  # else: released whole
            self.unblock(event.process)
            return
        process = event.process

        def closed(yes: bool | None) -> None:
            if yes:
                self.unblock(process, whole_jail=True)

        self.app.push_screen(
            ConfirmDialog(
                f"Release jail {jail.name}",
                f"PID {process.pid} is held by the {jail.strategy} jail {jail.name}, which is released "
                f"as a whole: {_plural(len(jail.members), 'process')}.",
                yes="Release jail",
            ),
            closed,
        )

    def on_process_unblocked(self, message: ProcessUnblocked) -> None:
        r = message.result
        removed = f"; jail {', '.join(r.removed_jails)} removed" if r.removed_jails else ""
        self.notify(f"PID {message.process.pid} {message.process.name} released{removed}", title="unblocked")
        self._refresh_sources()

    # ---- launch and relaunch -----------------------------------------------------------------

    def _launch_strategies(self, what: str) -> tuple[StrategyInfo, ...] | None:
        if self.strategies is None:
            reason = self.strategies_error or "still reading them"
            self.notify(f"cannot {what}: jail strategies unavailable ({reason})", severity="error")
            return None
        return tuple(s for s in self.strategies if s.launch)

    def action_launch(self) -> None:
        if not self._may_act("launch"):
            return
        strategies = self._launch_strategies("launch")
        if strategies is None:
            return
        dialog = LaunchDialog(
            strategies, default_user=default_user(), taken_jails={j.name for j in self.jails}
        )
        self.app.push_screen(dialog, self._launch_dialog_closed)

    def _launch_dialog_closed(self, request: LaunchRequest | None) -> None:
        if request is not None:
            self.launch(request)

    def on_launched(self, message: Launched) -> None:
        r = message.result
        self.notify(
            f"PID {r.pid} started in jail {r.jail} ({r.strategy}): "
            f"{printable(shlex.join(message.request.argv), 300)}; "
            f"output in {message.log}",
            title="launched",
            timeout=10,
        )
        self._refresh_sources()

    @on(ProcessTable.RelaunchRequested)
    def _relaunch_requested(self, event: ProcessTable.RelaunchRequested) -> None:
        if not self._may_act("relaunch") or self._launch_strategies("relaunch") is None:
            return
        if not event.process.cmdline:
            self.notify(f"cannot relaunch PID {event.process.pid}: no command line", severity="error")
            return
        self.check_relaunch(event.process)

    def on_relaunch_checked(self, message: RelaunchChecked) -> None:
        if self.app.screen is not self:
            return  # a dialog is open already
        process, cwd = message.process, message.cwd
        dialog = LaunchDialog(
            self._launch_strategies("relaunch") or (),
            default_user=process.user,
            taken_jails={j.name for j in self.jails},
            relaunch=process,
            cwd=cwd,
        )

        def chosen(request: LaunchRequest | None) -> None:
            if request is None:
                return

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self.relaunch(process, request)

            log = self.engine.launch_log_path(request.jail or "")  # the dialog always names it
            info = next((s for s in self.strategies or () if s.name == request.strategy), None)
            question = relaunch_question(process, request, cwd, log, info)
            self.app.push_screen(ConfirmDialog("Relaunch jailed", question, yes="Relaunch"), confirmed)

        self.app.push_screen(dialog, chosen)

    def on_relaunched(self, message: Relaunched) -> None:
        p, r = message.process, message.result
        self.notify(
            f"PID {p.pid} {p.name} terminated; started again as PID {r.pid} in jail {r.jail} "
            f"({r.strategy}); output in {r.log}",
            title="relaunched",
            timeout=10,
        )
        self._refresh_sources()

    @on(ProcessTable.DetailsRequested)
    def _details_requested(self) -> None:
        detail = self.query_one(ProcessDetail)
        self.query_one("#bottom").display = True  # folded panels too: until esc
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
        self.fit_layout()
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
        """Every process, not only networked ones: to list them, to draw the tree's ancestors,
        or to show jailed processes that hold no socket (the engine's networked-only snapshot
        leaves those out: a seccomp-jailed command never has one)."""
        return not self.options.networked_only or self.options.tree or bool(self.jails)

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


def status_line(o: ViewOptions, snap: Snapshot | None, shown: int, jails: int, width: int = 10_000) -> Text:
    """What the table shows, within `width`: short forms first ("12/80 procs"), then the view
    mode, tree and socket count drop out; the counts, the sort and what is unreadable stay."""
    arrow = "▼" if o.sort in DESCENDING else "▲"
    parts = []
    if snap is not None:
        sockets = sum(len(p.sockets) for p in snap.processes)
        total = len(snap.processes)
        parts += [
            Part(Text(f"{shown} of {_plural(total, 'process')}"), Text(f"{shown}/{total}"), 0),
            Part(Text(_plural(sockets, "socket")), Text(f"{sockets} sock"), 4),
            Part(Text(_plural(jails, "jail")), None, 2),
        ]
    parts += [
        Part(Text(f"sort {o.sort} {arrow}"), Text(f"{o.sort}{arrow}"), 1),
        Part(
            Text("all" if not o.networked_only else "networked"),
            Text("all" if not o.networked_only else "net"),
            5,
        ),
        Part(Text("tree" if o.tree else "list"), None, 6 if not o.tree else 3),
    ]
    if snap is not None and snap.denied:
        parts.append(Part(Text(f"{len(snap.denied)} unreadable"), Text(f"{len(snap.denied)} unread"), 1))
    return fit_parts(parts, width or 10_000)


def relaunch_question(
    process: Process, request: LaunchRequest, cwd: str | None, log: Path, info: StrategyInfo | None = None
) -> str:
    """What `y` will do, exactly: the confirmation names the process, command, place and jail.
    Each quoted part is escaped and bounded, so none can hide or push away the rest. `info`:
    the strategy's capabilities as the engine gave them (by default the registry's)."""
    if info is None:
        from netjail.backends.jails.strategies import by_name

        info = by_name(request.strategy)
    how = info.effect if info else ""
    name, user = printable(process.name, 64), printable(process.user or "its user", 64)
    command, where = (
        printable(shlex.join(process.cmdline), 1000),
        printable(cwd or "an unknown directory", 1024),
    )
    allow = ", ".join([*request.allow, *(["loopback"] if request.allow_loopback else [])])
    tail = f", allowing only {allow}" if allow and (info is None or info.allow_list) else ""
    return (
        f"Terminate PID {process.pid} ({name}), then start `{command}` "
        f"in {where} as {user} under {request.strategy} "
        f"({how}{tail}), in jail {request.jail}, with a minimal environment (not its own); "
        f"output goes to {printable(str(log), 1024)}."
    )

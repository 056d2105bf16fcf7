"""The block dialog: strategy, scope, allow-list, loopback and kill options for one process.

Dismisses with a ready `BlockRequest` (carrying the process's start time, so the engine refuses
a PID that now names another process), an `OwnerBlockRequest` when the owner strategy was
chosen (the scope is then the process's user or group: the screen shows every process that
affects before anything is blocked), or None. Enter confirms from any field; Escape cancels.
Arrow keys pick options (the highlighted option is the choice), space toggles checkboxes.
"""

from __future__ import annotations

import grp
from collections.abc import Sequence
from typing import ClassVar

from netjail.backends.errors import BadInput
from netjail.backends.jails.policy import parse_allow_list
from netjail.backends.model import BlockRequest, OwnerBlockRequest, Process, StrategyInfo
from netjail.widgets.form_dialog import FormDialog
from netjail.widgets.safe_text import printable
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

SCOPES = (("process", "this process only"), ("tree", "process tree (children too)"))
OWNER = "owner"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def owner_scopes(p: Process) -> list[tuple[str, str]]:
    """The owner strategy's scopes for this process: its user, its group (when known); names
    escaped (a passwd or group entry is text too)."""
    scopes = []
    if p.uid is not None:
        user = printable(p.user, 64)
        scopes.append(("user", f"user {user} (uid {p.uid}): all its processes, now and later"))
    if p.gid is not None:
        group = printable(_group_name(p.gid), 64)
        scopes.append(("group", f"group {group} (gid {p.gid}): all its processes, now and later"))
    return scopes


class BlockDialog(FormDialog[BlockRequest | OwnerBlockRequest]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "confirm", "Block", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, process: Process, strategies: Sequence[StrategyInfo]) -> None:
        super().__init__()
        self.process = process
        self.strategies = [s for s in strategies if s.live_process]
        self._scopes: list[tuple[str, str]] = list(SCOPES)

    def compose(self) -> ComposeResult:
        p = self.process
        with Vertical(id="dialog", classes="dialog"):
            yield Static(
                Text.assemble(
                    ("Block ", "bold"),
                    (f"{p.pid} {printable(p.name, 64)}", "bold red"),
                    f"  ({printable(p.user, 64)})",
                )
            )
            command = printable(" ".join(p.cmdline) or p.exe, 1024)
            yield Static(Text(command, style="dim", overflow="ellipsis", no_wrap=True))
            yield Label("Strategy", classes="field-label")
            yield OptionList(
                *(
                    Option(Text.assemble((s.name, "bold"), f"  {s.description}"), id=s.name)
                    for s in self.strategies
                ),
                id="strategy",
            )
            yield Label("Scope", classes="field-label", id="scope-label")
            yield OptionList(*(Option(Text(text), id=key) for key, text in SCOPES), id="scope")
            yield Label(
                "Allow-list: CIDR or CIDR:PORT, comma or space separated (empty: none)", classes="field-label"
            )
            yield Input(
                placeholder="e.g. 10.0.0.0/8, 192.168.1.5:53, [fd00::1]:443", id="allow", compact=True
            )
            yield Static("", id="allow-error")
            yield Checkbox("allow loopback (127.0.0.0/8, ::1)", id="loopback")
            yield Checkbox("kill existing connections", id="kill")
            with Horizontal(id="buttons"):
                yield Button("Block", variant="error", id="confirm", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
            yield Static(
                Text("enter block · esc cancel · tab next field · ↑↓ choose · space toggle", style="dim"),
                id="dialog-hint",
            )

    def on_mount(self) -> None:
        for option_list in self.query(OptionList):
            option_list.highlighted = 0
        self.query_one("#strategy", OptionList).focus()
        self._sync_allow_enabled()

    # ---- validation --------------------------------------------------------------------------

    def _strategy(self) -> StrategyInfo | None:
        index = self.query_one("#strategy", OptionList).highlighted
        return self.strategies[index] if index is not None and self.strategies else None

    def _sync_allow_enabled(self) -> None:
        strategy = self._strategy()
        self.query_one("#allow", Input).disabled = strategy is not None and not strategy.allow_list
        owner = strategy is not None and strategy.name == OWNER
        self.query_one("#kill", Checkbox).disabled = owner  # rules by owner; no per-process kill
        scopes = owner_scopes(self.process) if owner else list(SCOPES)
        if scopes != self._scopes:
            self._scopes = scopes
            scope = self.query_one("#scope", OptionList)
            scope.clear_options()
            scope.add_options([Option(Text(text), id=key) for key, text in scopes])  # not markup
            scope.highlighted = 0 if scopes else None
            label = "Whose processes (shown before anything is blocked)" if owner else "Scope"
            self.query_one("#scope-label", Label).update(label)

    @on(OptionList.OptionHighlighted, "#strategy")
    def _strategy_changed(self) -> None:
        self._sync_allow_enabled()

    def _scope(self) -> str | None:
        index = self.query_one("#scope", OptionList).highlighted
        return self._scopes[index][0] if index is not None and index < len(self._scopes) else None

    @on(Input.Changed, "#allow")
    def _validate_live(self) -> None:
        self._allow_entries()

    def _allow_entries(self) -> tuple[str, ...] | None:
        field = self.query_one("#allow", Input)
        error = self.query_one("#allow-error", Static)
        try:
            # the engine's parser: the dialog sends what the rules will hold
            entries = parse_allow_list((field.value,)) if not field.disabled else ()
        except BadInput as exc:
            error.update(Text(printable(str(exc)), style="bold red"))
            field.add_class("-invalid")
            return None
        error.update("")
        field.remove_class("-invalid")
        return tuple(str(e) for e in entries)

    # ---- outcome -----------------------------------------------------------------------------

    def build_request(self) -> BlockRequest | OwnerBlockRequest | None:
        """The request the form describes, or None (with the reason shown) when it is invalid."""
        strategy = self._strategy()
        if strategy is None:
            self.query_one("#allow-error", Static).update(
                Text("no strategy can block a live process here", style="bold red")
            )
            return None
        allow = self._allow_entries()
        if allow is None:
            self.query_one("#allow", Input).focus()
            return None
        loopback = self.query_one("#loopback", Checkbox).value
        scope = self._scope()
        if strategy.name == OWNER:
            if scope not in ("user", "group"):
                self.query_one("#allow-error", Static).update(
                    Text("the process's user and group are unknown", style="bold red")
                )
                return None
            uid, gid = self.process.uid, self.process.gid
            return OwnerBlockRequest(
                user=str(uid) if scope == "user" else None,
                group=str(gid) if scope == "group" else None,
                allow=allow,
                allow_loopback=loopback,
            )
        return BlockRequest(
            pid=self.process.pid,
            start_time=self.process.start_time,
            tree=scope == "tree",
            allow=allow,
            allow_loopback=loopback,
            kill_connections=self.query_one("#kill", Checkbox).value,
            strategy=strategy.name,
        )

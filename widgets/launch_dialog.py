"""The launch dialog: start a command already jailed (`n`), or pick how a running process is
relaunched jailed (`R`: the command, directory and user are the process's own).

Dismisses with a ready `LaunchRequest` or None. Enter confirms from any field, Escape cancels;
arrow keys pick the strategy, space toggles checkboxes. Every field is checked as it is typed
and again on Enter, with the reason under the field: nothing is launched from a bad form.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Sequence
from typing import ClassVar

from netjail.backends.errors import BadInput
from netjail.backends.jails.policy import parse_allow_list
from netjail.backends.model import LaunchRequest, Process, StrategyInfo
from netjail.widgets.form_dialog import FormDialog
from netjail.widgets.launch_form import (
    FieldError,
    check_executable,
    check_jail_name,
    check_user,
    default_jail_name,
    parse_command,
)
from netjail.widgets.safe_text import printable
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static
from textual.widgets.option_list import Option


def _error(message: str) -> Text:
    return Text(printable(message), style="bold red")  # quotes what was typed or pasted


class LaunchDialog(FormDialog[LaunchRequest]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "confirm", "Launch", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        strategies: Sequence[StrategyInfo],
        *,
        default_user: str,
        taken_jails: Collection[str] = (),
        relaunch: Process | None = None,
        cwd: str | None = None,
    ) -> None:
        super().__init__()
        self.strategies = [s for s in strategies if s.launch]
        self.default_user = default_user
        self.taken_jails = frozenset(taken_jails)
        self.relaunch = relaunch
        self.cwd = cwd

    # ---- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        p = self.relaunch
        with Vertical(id="dialog", classes="dialog launch"):
            if p is None:
                yield Static(Text("Launch a command jailed", style="bold"))
            else:
                yield Static(
                    Text.assemble(
                        ("Relaunch ", "bold"), (f"{p.pid} {printable(p.name, 64)}", "bold red"), " jailed"
                    )
                )
                yield Static(
                    Text(
                        "terminates it, then starts the same program, arguments, directory and real user "
                        "under the strategy below (minimal environment; output to the jail's log, "
                        "named before it starts)",
                        style="dim",
                    )
                )
            if p is None:
                yield Label("Command (quoted like in a shell; no shell runs it)", classes="field-label")
                yield Input(placeholder="e.g. curl -s https://example.org", id="command", compact=True)
            else:
                yield Label("Command", classes="field-label")
                yield Static(
                    Text(printable(shlex.join(p.cmdline), 1024), overflow="ellipsis", no_wrap=True),
                    id="command-fixed",
                )
                yield Static(
                    Text.assemble(
                        ("in ", "dim"),
                        printable(self.cwd or "?", 256),
                        ("  as ", "dim"),
                        printable(p.user or "?", 64),
                    ),
                    id="where",
                )
            yield Static("", id="command-error", classes="field-error")
            yield Label("Strategy", classes="field-label")
            yield OptionList(
                *(
                    Option(Text.assemble((s.name, "bold"), f"  {s.description}"), id=s.name)
                    for s in self.strategies
                ),
                id="strategy",
            )
            yield Label(
                "Allow-list: CIDR or CIDR:PORT, comma or space separated (empty: none)", classes="field-label"
            )
            yield Input(
                placeholder="e.g. 10.0.0.0/8, 192.168.1.5:53, [fd00::1]:443", id="allow", compact=True
            )
            yield Static("", id="allow-error", classes="field-error")
            with Horizontal(id="names"):
                if p is None:
                    with Vertical(classes="half"):
                        yield Label("Run as user", classes="field-label")
                        yield Input(self.default_user, id="user", compact=True)
                with Vertical(classes="half"):
                    yield Label("Jail name", classes="field-label")
                    yield Input(placeholder=self._default_jail(), id="jail", compact=True)
            yield Static("", id="names-error", classes="field-error")
            with Horizontal(id="options"):
                yield Checkbox("allow loopback (gid)", id="loopback")
                yield Checkbox("keep the jail after the command exits", id="keep")
            with Horizontal(id="buttons"):
                yield Button("Relaunch" if p else "Launch", variant="error", id="confirm", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
            yield Static(
                Text("enter confirm · esc cancel · tab next field · ↑↓ strategy · space toggle", style="dim"),
                id="dialog-hint",
            )

    def on_mount(self) -> None:
        self.query_one("#strategy", OptionList).highlighted = 0
        if self.relaunch is None:
            self.query_one("#command", Input).focus()
        else:
            self.query_one("#strategy", OptionList).focus()
        self._sync_enabled()

    # ---- fields ------------------------------------------------------------------------------

    def _strategy(self) -> StrategyInfo | None:
        index = self.query_one("#strategy", OptionList).highlighted
        return self.strategies[index] if index is not None and self.strategies else None

    def _sync_enabled(self) -> None:
        strategy = self._strategy()
        self.query_one("#allow", Input).disabled = strategy is not None and not strategy.allow_list
        self.query_one("#loopback", Checkbox).disabled = not (strategy and strategy.loopback_option)
        self._allow()  # a disabled field is not wrong

    @on(OptionList.OptionHighlighted, "#strategy")
    def _strategy_changed(self) -> None:
        self._sync_enabled()

    def _show(self, selector: str, error: str | None, field: Input | None = None) -> None:
        self.query_one(selector, Static).update(_error(error) if error else "")
        if field is not None:
            field.set_class(bool(error), "-invalid")

    def _argv(self, full: bool = False) -> tuple[str, ...] | None:
        """The command, or None with the reason shown; `full` also looks the program up."""
        if self.relaunch is not None:
            return self.relaunch.cmdline
        field = self.query_one("#command", Input)
        try:
            argv = parse_command(field.value)
            if full:
                check_executable(argv[0])
        except FieldError as exc:
            self._show("#command-error", str(exc) if field.value or full else None, field)
            return None
        self._show("#command-error", None, field)
        return argv

    def _default_jail(self, argv: tuple[str, ...] | None = None) -> str:
        argv = argv or (self.relaunch.cmdline if self.relaunch else None)
        return default_jail_name(argv[0] if argv else "cmd", self.taken_jails)

    @on(Input.Changed, "#command")
    def _command_changed(self) -> None:
        argv = self._argv()
        self.query_one("#jail", Input).placeholder = self._default_jail(argv)

    @on(Input.Changed, "#allow")
    def _allow_changed(self) -> None:
        self._allow()

    def _allow(self) -> tuple[str, ...] | None:
        field = self.query_one("#allow", Input)
        try:
            entries = parse_allow_list((field.value,)) if not field.disabled else ()  # the engine's parser
        except BadInput as exc:
            self._show("#allow-error", str(exc), field)
            return None
        self._show("#allow-error", None, field)
        return tuple(str(e) for e in entries)

    @on(Input.Changed, "#user")
    @on(Input.Changed, "#jail")
    def _names_changed(self) -> None:
        self._names()

    def _names(self) -> tuple[str | None, str | None] | None:
        """(user, jail), or None with the reason shown."""
        try:
            user = None if self.relaunch else check_user(self.query_one("#user", Input).value)
            jail = check_jail_name(self.query_one("#jail", Input).value)
        except FieldError as exc:
            self._show("#names-error", str(exc))
            return None
        if jail is not None and jail in self.taken_jails:
            self._show("#names-error", f"jail {jail!r} exists already: pick another name")
            return None
        self._show("#names-error", None)
        return user, jail

    # ---- outcome -----------------------------------------------------------------------------

    def build_request(self) -> LaunchRequest | None:
        """The request the form describes, or None (every reason shown) when it is invalid."""
        strategy = self._strategy()
        argv, allow, names = self._argv(full=True), self._allow(), self._names()
        if strategy is None:
            self._show("#command-error", "no strategy here can launch a command")
            return None
        if argv is None or allow is None or names is None:
            return None
        user, jail = names
        p = self.relaunch
        return LaunchRequest(
            argv=argv,
            strategy=strategy.name,
            jail=jail or self._default_jail(argv),
            allow=allow,
            allow_loopback=strategy.loopback_option and self.query_one("#loopback", Checkbox).value,
            user=p.user if p is not None else user,
            keep=self.query_one("#keep", Checkbox).value,
            cwd=self.cwd if p is not None else None,
        )

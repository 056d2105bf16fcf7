"""Every key, what it does, and what the columns mean."""

from __future__ import annotations

from typing import ClassVar

from netjail.app.process_columns import COLUMNS as PROCESS_COLUMNS
from netjail.app.process_columns import RATES_HELP, SORTS
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    ("/", "filter by PID, name, user, port or address; enter keeps it, esc clears it"),
    ("s", f"cycle the sort: {', '.join(SORTS)}"),
    ("a", "all processes / only processes with sockets or a jail"),
    ("t", "process-tree view (ancestors of matches shown dimmed)"),
    ("p", "fold or unfold the detail and jails panels (kept for the session)"),
    ("w", "what the jails dropped: every destination tried, DNS names, counts (filter, sort)"),
    ("↑ ↓ pgup pgdn", "move the selection; the detail panel follows it"),
    ("enter", "full details of the selected process (esc to return)"),
    ("b", "block the selected process: strategy, scope, allow-list; enter confirms"),
    ("", "strategy owner: its user or group, every process affected listed first"),
    ("u", "unblock the selected process"),
    ("n", "launch a command jailed (netns, gid or seccomp); its output goes to a log"),
    ("R", "relaunch the selected process jailed: terminate it, start its own program"),
    ("", "and arguments as its real user under a launch strategy; asks first"),
    ("! or ctrl+x", "release every jail (asks first): the panic button"),
    ("r, ?", "refresh now; this help"),
    ("q", "quit (jails stay: they live in the kernel, not in netjail-tui)"),
)

COLUMNS: tuple[tuple[str, str], ...] = tuple((c.label, c.help) for c in PROCESS_COLUMNS if c.help)
NARROW = (
    "A narrow terminal shows fewer columns (the least important go first: UNIT, LISTEN, NETNS, "
    "REMOTE, USER); PID, NAME, JAIL and DROPPED always stay, and enter shows everything. "
    "p folds or unfolds the detail and jails panels (folded by themselves below 30 lines)."
)


def _table(rows: tuple[tuple[str, str], ...], key_style: str) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=False)
    table.add_column(style=key_style, no_wrap=True)
    table.add_column()
    for key, text in rows:
        table.add_row(key, Text(text))  # not markup: "net:[inode]" is text
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Static(Text("netjail-tui keys", style="bold"))
            yield Static(_table(KEYS, "bold cyan"), classes="help-section")
            yield Static(Text("Columns", style="bold"), classes="help-title")
            yield Static(_table(COLUMNS, "bold"), classes="help-section")
            yield Static(
                Text(
                    f"{RATES_HELP}\n{NARROW}\n"
                    "Dimmed rows: a process in another network namespace (rules made here do not reach "
                    "it), or in the tree view an ancestor shown only for context.\n"
                    "Without root netjail-tui is read-only: blocking needs CAP_NET_ADMIN and write access "
                    "to cgroup2.",
                    style="dim",
                ),
                classes="help-section",
            )
            yield Static(Text("esc, ? or q closes this help", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)

"""Before a user or group is blocked: every process that loses the network, and a yes/no.

`y`/Enter blocks, `n`/Escape cancels; ↑↓ and page keys move through the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from netjail.backends.model import Process
from netjail.widgets.safe_text import printable
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Static


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"


class OwnerPreviewDialog(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Block", priority=True),
        Binding("n,escape", "answer(False)", "Cancel"),
    ]

    def __init__(
        self,
        who: str,
        processes: Sequence[Process],
        allow: Sequence[str] = (),
        own_netns: int | None = None,
    ) -> None:
        super().__init__()
        self.who = printable(who)  # "user nobody (uid 65534)"
        self.processes = tuple(sorted(processes, key=lambda p: p.pid))
        self.allow = tuple(allow)
        self.own_netns = own_netns

    def _elsewhere(self, p: Process) -> bool:
        return self.own_netns is not None and p.netns is not None and p.netns != self.own_netns

    def compose(self) -> ComposeResult:
        n = len(self.processes)
        allowed = ", ".join(self.allow) or "nothing"
        with Vertical(id="dialog", classes="dialog owner-preview"):
            yield Static(Text.assemble(("Block ", "bold"), (self.who, "bold red")))
            yield Static(
                Text.assemble(
                    f"Cuts {_plural(n, 'running process')} off the network now",
                    " (below)" if n else "",
                    ", and every process it starts later, until the jail is released. Still allowed: ",
                    (printable(allowed), "bold"),
                    ".",
                ),
                id="question",
            )
            table: DataTable[str | Text] = DataTable(id="affected", cursor_type="row", zebra_stripes=True)
            table.display = bool(n)
            yield table
            if not n:
                yield Static(Text("no process runs as it right now", style="dim"), id="affected-none")
            elif any(self._elsewhere(p) for p in self.processes):
                yield Static(
                    Text(
                        "dimmed: in another network namespace, which netjail's rules here do not reach",
                        style="dim",
                    ),
                    id="affected-note",
                )
            with Horizontal(id="buttons"):
                yield Button("Block", variant="error", id="yes", compact=True)
                yield Button("Cancel", id="no", compact=True)
            yield Static(
                Text("y/enter block · n/esc cancel · ↑↓ scroll the list", style="dim"), id="dialog-hint"
            )

    def on_mount(self) -> None:
        table = self.query_one("#affected", DataTable)
        columns = (("PID", 7), ("USER", 9), ("GROUP", 6), ("NAME", 16), ("SOCK", 4), ("COMMAND", 30))
        for label, width in columns:
            table.add_column(label, width=width, key=label.lower())
        for p in self.processes:
            cells = (  # Text cells: DataTable reads a str cell as markup
                str(p.pid),
                printable(p.user, 64),
                "?" if p.gid is None else str(p.gid),
                printable(p.name, 64),
                str(len(p.sockets)) if p.sockets else "",
                printable(" ".join(p.cmdline) or f"[{p.name}]", 1024),
            )
            style = "dim" if self._elsewhere(p) else ""
            table.add_row(*(Text(c, style=style) for c in cells), key=str(p.pid))
        if self.processes:
            table.focus()

    @property
    def listed_pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def action_answer(self, yes: bool) -> None:
        if yes and self.focused is not None and self.focused.id == "no":
            yes = False
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

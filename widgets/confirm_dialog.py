"""A yes/no question: `y`/Enter confirms, `n`/Escape cancels."""

from __future__ import annotations

from typing import ClassVar

from netjail.widgets.safe_text import printable
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes", priority=True),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, question: str, yes: str = "Yes") -> None:
        """`title` and `question` are plain text (they quote names and command lines): shown
        escaped, never as markup, so nothing in them can hide the rest of the question."""
        super().__init__()
        self._title, self._question, self._yes = title, question, yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog confirm"):
            yield Static(Text(printable(self._title), style="bold"))
            yield Static(Text(printable(self._question)), id="question")
            with Horizontal(id="buttons"):
                yield Button(self._yes, variant="error", id="yes", compact=True)
                yield Button("Cancel", id="no", compact=True)
            yield Static(Text("y/enter confirm · n/esc cancel", style="dim"), id="dialog-hint")

    def action_answer(self, yes: bool) -> None:
        if yes and self.focused is not None and self.focused.id == "no":
            yes = False
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

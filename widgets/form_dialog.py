"""What the block and launch dialogs share: Enter confirms from any field (unless the Cancel
button has focus), Escape and Cancel dismiss with nothing, and a form that does not validate
stays open (its widgets show why)."""

from __future__ import annotations

from typing import Generic, TypeVar

from textual import on
from textual.screen import ModalScreen
from textual.widgets import Button

RequestT = TypeVar("RequestT")


class FormDialog(ModalScreen[RequestT | None], Generic[RequestT]):
    def build_request(self) -> RequestT | None:
        """The request the form describes, or None while it does not validate."""
        raise NotImplementedError

    def action_confirm(self) -> None:
        if self.focused is not None and self.focused.id == "cancel":
            self.dismiss(None)
            return
        request = self.build_request()
        if request is not None:
            self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#confirm")
    def _confirm_pressed(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

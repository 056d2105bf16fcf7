"""The Textual application: one engine, the dashboard screen, app-wide keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from netjail.app.netns_labels import named_netns
from netjail.app.screens.help import HelpScreen
from netjail.app.screens.main import MainScreen
from netjail.backends.engine_api import EngineAPI
from netjail.widgets.safe_text import printable
from textual.app import App
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

NOTIFY_LIMIT = 2000  # characters of one notification: a backstop (callers bound what they quote)


class NetjailApp(App[None]):
    CSS_PATH = "netjail.tcss"
    TITLE = "netjail"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        engine: EngineAPI,
        interval: float = 1.0,
        counters_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        netns_names: Callable[[], dict[int, str]] = named_netns,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.interval = interval
        self.counters_interval = counters_interval
        self.clock = clock
        self.netns_names = netns_names

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification (widgets' and screens' end here too) is plain text, escaped:
        they quote process names, command lines and engine errors, never markup."""
        super().notify(
            printable(message, NOTIFY_LIMIT),
            title=printable(title, 80),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def get_default_screen(self) -> Screen[None]:
        return MainScreen(self.engine, self.interval, self.counters_interval, self.clock, self.netns_names)

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

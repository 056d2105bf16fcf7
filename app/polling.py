"""One polled source: a thread worker per poll, never two at once, the next one scheduled when
the last ended (so a slow source stretches its own period instead of piling up), and an
exponential back-off while it fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message_pump import MessagePump
from textual.timer import Timer
from textual.worker import Worker

MAX_BACKOFF = 30.0
MIN_DELAY = 0.01  # Textual timers divide by their interval: never schedule 0


class Poller:
    def __init__(self, owner: MessagePump, launch: Callable[[], Worker[Any]], interval: float) -> None:
        self._owner = owner
        self._launch = launch
        self.interval = interval
        self.failures = 0
        self._worker: Worker[Any] | None = None
        self._timer: Timer | None = None
        self._again = False  # a poke arrived while a poll was running
        self.active = True  # False once stopped: a poll in flight then schedules no other

    def start(self) -> None:
        self.active = True
        self._run()

    def _run(self) -> None:
        self._timer = None
        self._again = False
        self._worker = self._launch()

    def owns(self, worker: Worker[Any]) -> bool:
        return worker is self._worker

    @property
    def next_delay(self) -> float:
        if self.failures:
            return min(self.interval * 2.0**self.failures, max(MAX_BACKOFF, self.interval))
        return self.interval

    def finished(self, ok: bool) -> float:
        """The current poll ended: schedule the next one and return its delay."""
        self._worker = None
        self.failures = 0 if ok else self.failures + 1
        delay = MIN_DELAY if self._again and ok else self.next_delay
        if self.active:
            self._timer = self._owner.set_timer(delay, self._run)
        return delay

    def poke(self) -> None:
        """Poll as soon as possible (after an action changed what the source would return)."""
        if not self.active:
            return
        if self._worker is not None:
            self._again = True
            return
        if self._timer is not None:
            self._timer.stop()
        self._run()

    def stop(self) -> None:
        self.active = False
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

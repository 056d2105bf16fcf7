"""TUI test helpers: a recorder of notifications (Textual posts them as `Notify` messages) and
a guard for pilot tests with real kernel effects (root, private netns, everything reset after)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from netjail.backends.engine import Engine
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot

from tests.conftest import Peer, in_private_netns


@dataclass
class Notes:
    """Every notification the app raised, in order, as (severity, title, message)."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def hook(self, message: Message) -> None:
        if isinstance(message, Notify):
            n = message.notification
            self.seen.append((n.severity, n.title, n.message))

    def having(self, text: str, severity: str | None = None) -> list[tuple[str, str, str]]:
        return [n for n in self.seen if text in n[2] and (severity is None or n[0] == severity)]


@pytest.fixture
def notes() -> Notes:
    return Notes()


@pytest.fixture
def kernel() -> Iterator[Engine]:
    """The real engine, in make test's private network namespace; all jails removed afterwards."""
    if os.geteuid() != 0:
        pytest.fail("TUI kernel tests need root: run `make test`", pytrace=False)
    if not in_private_netns():
        pytest.fail("refusing to run in the machine's own network namespace: run `make test`", pytrace=False)
    engine = Engine()
    yield engine
    engine.reset()


async def wait_until(
    pilot: Pilot[None], predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Let the app run until `predicate()` is truthy (the event loop keeps turning meanwhile)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        await pilot.pause(0.05)
    if not predicate():
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def settled(pilot: Pilot[None], receiver: Peer, timeout: float = 30.0) -> int:
    """A udp-recv peer's count once it has read everything queued: two `idle` lines (each
    0.2 s waited on an empty queue) written after this call; the app keeps running meanwhile."""
    start = len(receiver.lines)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        fresh = [ln for ln in receiver.lines[start:] if ln.startswith("COUNT ")]
        if len(fresh) >= 2 and all('"idle": true' in ln for ln in fresh[-2:]):
            return int(json.loads(fresh[-1][6:])["received"])
        await pilot.pause(0.05)
    raise AssertionError(f"the receiver kept receiving for {timeout}s ({receiver.value('received')})")


async def sleep_in_app(pilot: Pilot[None], seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await pilot.pause(0.05)
    await asyncio.sleep(0)


def count(text: str | None) -> int:
    """Back from the table's compact counts: '950', '1.2k', '35k'."""
    if not text:
        return 0
    scale = {"k": 1000, "M": 1_000_000, "G": 1_000_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("kMG")) * scale)

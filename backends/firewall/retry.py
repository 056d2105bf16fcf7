"""The commit loop both netjail tables share (filter in iptc_backend, nat in nat.py).

libiptc commits a whole table copy; when another writer committed in between, the kernel says
EAGAIN and the change is planned again from a fresh read. Anything that fails for good undoes
what was already committed in the other family, so a change lands in both families or neither.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from netjail.backends.errors import NetjailError, OperationFailed

MAX_ATTEMPTS = 8
BACKOFF_SECONDS = 0.005


def commit_with_retries(
    attempt: Callable[[], bool], undo: Callable[[NetjailError], None], gave_up: str
) -> None:
    """Run `attempt` (True once every family is committed) until it succeeds, with jittered
    backoff; on an error, or after MAX_ATTEMPTS, `undo` and raise."""
    for n in range(MAX_ATTEMPTS):
        if n:
            time.sleep(BACKOFF_SECONDS * n * (1 + random.random()))
        try:
            if attempt():
                return
        except NetjailError as exc:
            undo(exc)
            raise
    failure = OperationFailed(f"gave up after {MAX_ATTEMPTS} attempts: {gave_up}")
    undo(failure)
    raise failure

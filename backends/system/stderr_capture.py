"""Capture what C libraries print straight to file descriptor 2."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def stderr_captured() -> Iterator[Callable[[], str]]:
    """libxtables prints warnings straight to fd 2 (e.g. "Extension owner revision 0 not
    supported" while it settles on a revision the kernel has): keep them for a failure's reason
    instead of the user's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    # a memfd, not a file in /tmp: no filesystem, and no `tempfile` import (with shutil, random,
    # bz2 and lzma: ~3 ms of a `netjail block`)
    with open(os.memfd_create("netjail-stderr"), "w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: (sink.seek(0), sink.read().decode(errors="replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)

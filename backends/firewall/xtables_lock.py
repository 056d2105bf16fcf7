"""The xtables lock: the flock every iptables-legacy writer takes (`-w`) around read-modify-commit.

libiptc itself takes no lock, and a commit replaces the whole table with the writer's copy: two
writers interleaving would silently drop one's rules. Holding the same lock as iptables-legacy
(`/run/xtables.lock`, or $XTABLES_LOCKFILE like iptables honours) keeps netjail and every other
well-behaved tool (Docker, ufw, scripts using -w) serialised.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from netjail.backends.errors import InsufficientPrivilege, OperationFailed

DEFAULT_LOCK = "/run/xtables.lock"
POLL_SECONDS = 0.01


def lock_path() -> str:
    return os.environ.get("XTABLES_LOCKFILE") or DEFAULT_LOCK


@contextmanager
def xtables_lock(timeout: float = 10.0) -> Iterator[None]:
    """Hold the xtables lock (exclusive flock), waiting at most `timeout` seconds for it."""
    path = lock_path()
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except PermissionError:
        raise InsufficientPrivilege(f"cannot open the xtables lock {path}: needs root") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a planted symlink: root would create or lock its target
            raise InsufficientPrivilege(f"refusing the xtables lock {path}: it is a symbolic link") from None
        raise OperationFailed(f"cannot open the xtables lock {path}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                    raise OperationFailed(f"cannot take the xtables lock {path}: {exc.strerror}") from None
                if time.monotonic() >= deadline:
                    raise OperationFailed(
                        f"another iptables writer has held {path} for over {timeout:g} s"
                    ) from None
                time.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the flock

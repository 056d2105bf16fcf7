"""A fresh terminal for an interactive jailed command, relayed to netjail's own.

A command that inherits netjail's terminal can push keystrokes into it (TIOCSTI), or become its
foreground job and read what the operator types next: that terminal belongs to root's shell.
So when any of fds 0-2 is a terminal the command gets a new pseudo-terminal instead, as its
controlling terminal in a session of its own, and netjail copies bytes between the two:
keys from its terminal (in raw mode, so Ctrl-C, Ctrl-D and Ctrl-Z are interpreted by the
pty's line discipline and reach the command's process group, not netjail) to the pty master,
and the master's output back. The pty starts with the real terminal's settings and size, and
follows size changes (SIGWINCH).

Whatever the command does to its pty (TIOCSTI, tcsetattr, TIOCSPGRP) stays in that pty. It
still writes to the operator's screen through the relay, escape sequences included: that is
what running an interactive command in a terminal means.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import select
import signal
import termios
import threading
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

STDIO = (0, 1, 2)
DRAIN_SECONDS = 1.0


def terminal_fds() -> tuple[int, ...]:
    """Which of fds 0, 1, 2 are terminals."""
    return tuple(fd for fd in STDIO if _isatty(fd))


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


@dataclass(slots=True)
class Pty:
    """A pty pair standing in for netjail's terminal on the fds `replaced`."""

    master: int
    slave: int
    replaced: tuple[int, ...]

    def stdio(self) -> tuple[int | None, int | None, int | None]:
        """Popen's stdin, stdout, stderr: the slave where netjail has a terminal, else inherited."""
        fds = [self.slave if fd in self.replaced else None for fd in STDIO]
        return fds[0], fds[1], fds[2]

    def close_slave(self) -> None:
        """Once the child has it: the master reads EIO when the last holder closes it."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1


@contextlib.contextmanager
def fresh_pty(replaced: tuple[int, ...]) -> Iterator[Pty]:
    """A pty with the settings and window size of netjail's terminal (the first of `replaced`)."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    os.set_inheritable(slave, False)
    pty = Pty(master, slave, replaced)
    try:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(slave, termios.TCSANOW, termios.tcgetattr(replaced[0]))
        copy_window_size(replaced[0], master)
        yield pty
    finally:
        pty.close_slave()
        os.close(master)


def copy_window_size(src: int, master: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)


# The terminal's answer to "who are you" (DA1, ESC [ c): ESC [ ? <params> c. Every terminal
# answers it, in order after whatever it was asked before.
_DA1_QUERY = b"\x1b[c"
_DA1_REPLY = re.compile(rb"\x1b\[\?[0-9;]*c")
REPLY_WAIT_SECONDS = 0.25


def swallow_replies(fd: int, screen: int, wait: float = REPLY_WAIT_SECONDS) -> None:
    """Discard the terminal's answers to what the command asked it (cursor position, device
    attributes, title reports ...) before the operator's shell reads the terminal again: they
    would arrive as typed input, and a terminal that echoes chosen text in a reply would type
    the command's words into root's shell. Asking DA1 last and reading up to its answer
    collects every earlier one; then the input queue is flushed. Keys typed meanwhile go too."""
    with contextlib.suppress(OSError):
        _write_all(screen, _DA1_QUERY)
    end, tail = time.monotonic() + wait, b""
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        tail = (tail + chunk)[-64:]
        if _DA1_REPLY.search(tail):
            break
    with contextlib.suppress(termios.error):
        termios.tcflush(fd, termios.TCIFLUSH)


@contextlib.contextmanager
def raw_mode(fd: int | None, screen: int | None = None) -> Iterator[None]:
    """netjail's terminal in raw mode while relaying, its settings restored however we leave
    (an exception, a relayed signal): the operator's shell must get its terminal back as it was.
    With `screen` (where the command's output went), the terminal's late answers to the
    command's queries are swallowed first (swallow_replies)."""
    if fd is None:
        yield
        return
    try:
        saved: list[Any] | None = termios.tcgetattr(fd)
    except termios.error:
        saved = None
    if saved is None:
        yield
        return
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        if screen is not None:
            swallow_replies(fd, screen)
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


@contextlib.contextmanager
def following_window_size(src: int, master: int) -> Iterator[None]:
    """Copy the window size on every SIGWINCH (main thread only: nobody else gets signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def resized(_signum: int, _frame: FrameType | None) -> None:
        copy_window_size(src, master)

    old = signal.signal(signal.SIGWINCH, resized)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, old)


def _foreground(fd: int) -> bool:
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])


def relay(pty: Pty, child_pidfd: int) -> None:
    """Copy keys to the pty and its output back until the child has exited and its output is
    drained (or every holder of the slave has closed it)."""
    # Only the terminal's foreground job may read it or change its modes (a background netjail
    # would be stopped by SIGTTIN/SIGTTOU): in the background the command gets no keys.
    keys = 0 if 0 in pty.replaced and _foreground(0) else None
    screen = next((fd for fd in (1, 2) if fd in pty.replaced), 0)
    pending = b""  # keys the pty did not take yet: never block on it while it has output for us
    os.set_blocking(pty.master, False)
    exited = False
    drain_until = 0.0
    with raw_mode(keys, screen), following_window_size(pty.replaced[0], pty.master):
        while True:
            readers = [pty.master]
            if not exited:
                readers.append(child_pidfd)
                if keys is not None and not pending:
                    readers.append(keys)
            writers = [pty.master] if pending else []
            # After the child's exit, a short wait drains what it wrote; a descendant that keeps
            # the slave open and writing does not keep netjail (and the operator's terminal)
            # hostage: at most DRAIN_SECONDS more.
            ready_r, ready_w, _ = select.select(readers, writers, [], 0.1 if exited else None)
            if pty.master in ready_w:
                with contextlib.suppress(BlockingIOError):
                    pending = pending[os.write(pty.master, pending) :]
            if pty.master in ready_r:
                try:
                    out = os.read(pty.master, 65536)
                except BlockingIOError:
                    out = b""
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    return  # the slave is closed everywhere: nothing more can come
                if out:
                    with contextlib.suppress(OSError):
                        _write_all(screen, out)
            if keys is not None and keys in ready_r:
                data = os.read(keys, 4096)
                if data:
                    pending += data
                else:
                    keys = None  # netjail's terminal hung up: the command sees no more input
            if child_pidfd in ready_r:
                exited, drain_until = True, time.monotonic() + DRAIN_SECONDS
            elif exited and (not ready_r or time.monotonic() > drain_until):
                return

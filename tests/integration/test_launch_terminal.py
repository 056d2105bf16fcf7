"""`netjail run` on a terminal: the command gets a pty of its own, relayed, never netjail's.

Each test gives the real CLI a terminal of its own: a pty pair made here, the slave as
netjail's stdin/stdout/stderr and its controlling terminal (netjail leads a session on it, as
it would under root's shell), the master read and written by the test like a terminal emulator.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import subprocess
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.conftest import python_for

# Run as the jailed command (nobody): tries to type into the terminal on fd 0, and reports
# where it stands. MARK is what it pushes: a shell reading the outer terminal would run it.
MARK = "echo INJECTED-BY-NOBODY"
_ATTACK = f"""
import errno, fcntl, json, os, termios  # 0x5429: TIOCGSID
seen = {{"sid": os.getsid(0), "pgrp": os.getpgrp(), "tty": os.ttyname(0)}}
try:
    for byte in {(MARK + chr(10)).encode()!r}:
        fcntl.ioctl(0, termios.TIOCSTI, bytes([byte]))
    seen["tiocsti"] = 0
except OSError as exc:
    seen["tiocsti"] = exc.errno
try:
    seen["tcsetpgrp"] = (os.tcsetpgrp(0, os.getpgrp()), 0)[1]
except OSError as exc:
    seen["tcsetpgrp"] = exc.errno
try:
    fd = os.open("/dev/tty", os.O_RDWR)
    seen["dev_tty_sid"] = int.from_bytes(fcntl.ioctl(fd, 0x5429, bytes(4)), "little")
except OSError as exc:
    seen["dev_tty_sid"] = -exc.errno
print("REPORT " + json.dumps(seen), flush=True)
"""

# Echoes one line typed on the terminal, reports its window size before and after a resize.
_ECHO = """
import os, signal, sys
got = []
signal.signal(signal.SIGWINCH, lambda *_: got.append(os.get_terminal_size(0)))
print("READY", tuple(os.get_terminal_size(0)), flush=True)
line = sys.stdin.readline()
print("GOT", line.strip().upper(), flush=True)
sys.stdin.readline()
print("SIZE", tuple(got[-1]) if got else None, flush=True)
sys.exit(5)
"""


@dataclass
class Terminal:
    """The test's end of netjail's terminal."""

    master: int
    slave: int
    proc: subprocess.Popen[bytes]
    output: bytearray = field(default_factory=bytearray)

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self.output += data

    def wait_for(self, text: bytes, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > end:
                raise AssertionError(f"{text!r} never showed; terminal had {bytes(self.output)!r}")
            time.sleep(0.02)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def pending_input(self) -> bytes:
        """What is waiting to be read on netjail's terminal: what its shell would read next."""
        os.set_blocking(self.slave, False)
        try:
            return os.read(self.slave, 4096)
        except BlockingIOError:
            return b""

    def report(self) -> dict[str, object]:
        line = bytes(self.output).split(b"REPORT ", 1)[1].split(b"\n", 1)[0]
        return json.loads(line)  # type: ignore[no-any-return]


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    made: list[Terminal] = []

    def start(*run_args: str) -> Terminal:
        master, slave = os.openpty()
        _set_size(master, 33, 97)

        def own_terminal() -> None:  # netjail's session and controlling terminal: the slave
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen(
            [*python_for(None), "-m", "netjail.app.cli", "run", *run_args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=own_terminal,
        )
        term = Terminal(master, slave, proc)
        threading.Thread(target=term._read, daemon=True).start()
        made.append(term)
        return term

    yield start
    for term in made:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait(5)
        os.close(term.master)
        os.close(term.slave)


def _jailed_python(code: str) -> list[str]:
    return ["--seccomp", "--user", "nobody", "--", python_for("nobody")[0], "-c", code]


def test_tiocsti_from_the_command_does_not_reach_netjails_terminal(terminal: Callable[..., Terminal]) -> None:
    """Finding 2: as nobody, TIOCSTI on fd 0 pushed a command into root's terminal."""
    term = terminal(*_jailed_python(_ATTACK))
    assert term.proc.wait(30) == 0, bytes(term.output)
    term.wait_for(b"REPORT ")
    time.sleep(0.2)
    seen = term.report()
    outer = os.ttyname(term.slave)
    # whatever TIOCSTI did, it did not type into netjail's terminal: nothing waits to be read
    assert MARK.encode() not in term.pending_input()
    # the command has a terminal of its own, in a session of its own, and cannot take ours
    assert seen["tty"] != outer and seen["dev_tty_sid"] == seen["sid"]
    assert seen["sid"] != term.proc.pid  # netjail leads the session of its terminal
    assert seen["sid"] == seen["pgrp"]  # a session leader: its pty's foreground job


def test_the_relay_passes_keys_and_output_and_restores_the_terminal(
    terminal: Callable[..., Terminal],
) -> None:
    term = terminal(*_jailed_python(_ECHO))
    before = termios.tcgetattr(term.slave)
    term.wait_for(b"READY (97, 33)")  # the pty started with netjail's window size
    assert termios.tcgetattr(term.slave)[3] & termios.ECHO == 0  # ours is raw while relaying
    term.type(b"hello relay\r")
    term.wait_for(b"GOT HELLO RELAY")
    assert b"hello relay" in term.output  # echoed by the command's pty, not by ours
    _set_size(term.master, 40, 120)  # SIGWINCH to netjail, copied to the command's pty
    time.sleep(0.5)
    term.type(b"\r")
    term.wait_for(b"SIZE (120, 40)")
    assert term.proc.wait(15) == 5  # the command's exit code
    assert termios.tcgetattr(term.slave) == before  # the terminal is given back as it was


def test_ctrl_c_and_ctrl_d_go_through_the_commands_pty(terminal: Callable[..., Terminal]) -> None:
    term = terminal("--seccomp", "--user", "nobody", "--", "sh", "-c", "echo READY; cat; sleep 30")
    term.wait_for(b"READY")
    term.type(b"abc\r")
    term.wait_for(b"abc\r\nabc")  # the pty's echo, then cat's copy
    term.type(b"\x04")  # Ctrl-D: EOF for cat (the pty's line discipline), then sleep runs
    time.sleep(0.3)
    assert term.proc.poll() is None
    term.type(b"\x03")  # Ctrl-C: SIGINT to the command's foreground job
    assert term.proc.wait(10) == 130


def test_a_descendant_holding_the_pty_does_not_keep_netjail(terminal: Callable[..., Terminal]) -> None:
    """The command exits; what it left behind keeps writing to its pty (and ignores SIGHUP)."""
    spam = "trap '' HUP; echo READY $$; (while :; do echo spam; done) & exit 7"
    term = terminal("--seccomp", "--user", "nobody", "--", "sh", "-c", spam)
    try:
        term.wait_for(b"READY ")
        started = time.monotonic()
        assert term.proc.wait(15) == 7
        assert time.monotonic() - started < 5
        assert termios.tcgetattr(term.slave)[3] & termios.ECHO  # given back cooked
    finally:
        sid = int(bytes(term.output).split(b"READY ", 1)[1].split()[0])
        os.killpg(sid, 9)


def _answer_queries_late(term: Terminal, delay: float, stop: threading.Event) -> None:
    """A terminal that answers what it is asked (cursor position, device attributes) in order,
    each answer `delay` seconds late (a slow link, an ssh hop)."""
    answers = {b"\x1b[6n": b"\x1b[3;1R", b"\x1b[c": b"\x1b[?1;2c"}
    seen = 0
    while not stop.is_set():
        data = bytes(term.output)
        found = sorted((i, q) for q in answers for i in range(seen, len(data)) if data.startswith(q, i))
        for i, query in found:
            time.sleep(delay)
            with contextlib.suppress(OSError):
                os.write(term.master, answers[query])
            seen = max(seen, i + len(query))
        time.sleep(0.01)


def test_the_terminals_late_answers_do_not_reach_the_operators_shell(
    terminal: Callable[..., Terminal],
) -> None:
    """Attack: the command asks the terminal a question and exits; the answer arrives after
    netjail gave the terminal back, as typed input of root's shell (a terminal that echoes
    chosen text in an answer would type the command's words there)."""
    term = terminal("--seccomp", "--user", "nobody", "--", "printf", r"\033[6n")
    stop = threading.Event()
    responder = threading.Thread(target=_answer_queries_late, args=(term, 0.15, stop), daemon=True)
    responder.start()
    try:
        assert term.proc.wait(15) == 0
        time.sleep(0.6)  # every late answer has arrived by now
        # a shell reads its terminal raw (readline): canonical mode would hide a partial line
        tty.setraw(term.slave, termios.TCSANOW)
        assert b"\x1b[3;1R" not in term.pending_input()
    finally:
        stop.set()
        responder.join(2)

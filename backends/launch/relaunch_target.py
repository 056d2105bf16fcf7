"""The process a relaunch replaces, read through a pidfd, and what may be started in its place.

Nothing of the running process is taken at face value (anyone's process may be relaunched by
root): it runs again as its *real* user and group, refused when they differ from the effective
or saved ones (a setuid/setgid program: its user chose its environment, root's privileges came
from the file); the program is the file the kernel runs (/proc/PID/exe), not cmdline[0]; the
environment is the minimal one of every launch, nothing from /proc/PID/environ; its directory
is used only if the user may enter it (the child changes into it as that user).

The pidfd is opened right after the identity check and the identity is checked again through
it, so every later read and signal concerns that process: a PID reused meanwhile is refused,
and signals go through pidfd_send_signal, which cannot reach a successor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from netjail.backends.errors import BadInput, NetjailError, NoSuchProcess
from netjail.backends.system import identity, procio


@dataclass(frozen=True, slots=True)
class Target:
    pid: int
    start_time: int
    pidfd: int
    uid: int  # real
    gid: int  # real
    setid: str  # "" or why the ids differ ("setuid: real 65534, effective 0 ...")
    exe: str  # the running program
    argv: tuple[str, ...]  # argv[0] is exe, or cmdline[0] when it names that same file
    cwd: str | None

    def exited(self) -> bool:
        return procio.pidfd_exited(self.pidfd)

    def terminate(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns once the process has exited."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, sig)
            if procio.pidfd_exited(self.pidfd, wait):
                return
        raise NetjailError(f"PID {self.pid} did not exit after SIGKILL")


def _ids(status: str, key: str) -> list[int]:
    for line in status.splitlines():
        if line.startswith(f"{key}:"):
            return [int(v) for v in line.split()[1:]]
    raise NoSuchProcess(f"no {key} line in the process status")


def _setid(kind: str, ids: list[int]) -> str:
    if len(set(ids)) == 1:
        return ""
    real, effective, saved, fs = ids
    return f"set{kind}: real {real}, effective {effective}, saved {saved}, filesystem {fs}"


def _exe(pid: int) -> str:
    link = f"/proc/{pid}/exe"
    try:
        exe = os.readlink(link)
        running = os.stat(link)
    except OSError as exc:
        raise BadInput(f"PID {pid}: cannot read the program it runs ({exc.strerror})") from None
    if exe.endswith(" (deleted)") or not os.path.isabs(exe):
        raise BadInput(f"PID {pid} runs a program that is no longer on disk ({exe})")
    try:
        on_disk = os.stat(exe, follow_symlinks=False)
    except OSError:
        raise BadInput(f"PID {pid} runs {exe}, which is no longer there") from None
    if not stat.S_ISREG(on_disk.st_mode) or (on_disk.st_dev, on_disk.st_ino) != (
        running.st_dev,
        running.st_ino,
    ):
        raise BadInput(f"PID {pid} runs a program that {exe} no longer is (replaced since it started)")
    return exe


def _argv0(exe: str, shown: str) -> str:
    """cmdline[0] when it names the running file (a venv's python finds its venv by it), else
    the file's own path: never a name that would start something else."""
    if os.path.isabs(shown):
        with contextlib.suppress(OSError):
            a, b = os.stat(shown), os.stat(exe)
            if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
                return shown
    return exe


@contextlib.contextmanager
def hold(pid: int, start_time: int) -> Iterator[Target]:
    """The process `pid` started at `start_time`, held by a pidfd while the caller uses it."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise NoSuchProcess(f"no such process: {pid}") from None
    try:
        identity.current(pid, start_time)  # the pidfd is of the process we checked
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            raise NoSuchProcess(f"no such process: {pid}") from None
        uids, gids = _ids(status, "Uid"), _ids(status, "Gid")
        cmdline = tuple(a.decode(errors="surrogateescape") for a in raw.split(b"\0")[:-1])
        if not cmdline:
            raise BadInput(f"PID {pid} has no command line to start again")
        exe = _exe(pid)
        try:
            cwd: str | None = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = None
        target = Target(
            pid,
            start_time,
            pidfd,
            uids[0],
            gids[0],
            " and ".join(filter(None, (_setid("uid", uids), _setid("gid", gids)))),
            exe,
            (_argv0(exe, cmdline[0]), *cmdline[1:]),
            cwd if cwd and not cwd.endswith(" (deleted)") else None,
        )
        if target.exited():  # it exited while we read: what we read may be a successor's
            raise NoSuchProcess(f"PID {pid} exited")
        yield target
    finally:
        os.close(pidfd)

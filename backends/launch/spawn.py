"""Start a command already jailed: in a network namespace, as a user, under a group, under seccomp.

The child is set up between fork and exec, in this order:

1. enter the network namespace (setns on /run/netns/NAME; needs root, so it comes first),
2. become the target user: setgroups (their groups), setresgid (the jail group when given,
   else theirs), setresuid, which also drops every capability root had,
3. chdir to `cwd` as that user, so it cannot start inside a directory only root may enter,
4. set no_new_privs: setuid/setgid bits and file capabilities stop working, so the command
   cannot climb back (sudo to nsenter out of the namespace, a setgid binary whose sockets the
   gid-owner rule no longer matches),
5. load the seccomp filter when asked,

then exec. Everything that needs a lookup (user, groups, command path, filter program) is done
in the parent first, so the forked child only makes system calls: safe even when the parent has
threads. A failure in the child comes back as one line naming the step, through a pipe of ours
(subprocess only reports "Exception occurred in preexec_fn").

A jailed root stays root: it may leave a netns or change its group again. Jail users, not root.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any

from netjail.backends.errors import (
    BadInput,
    InsufficientPrivilege,
    NetjailError,
    OperationFailed,
    UnsupportedEnvironment,
)
from netjail.backends.launch import credentials, seccomp_filter
from netjail.backends.launch.credentials import Credentials

CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)
_setns = _libc.setns
_setns.argtypes = (ctypes.c_int, ctypes.c_int)
_setns.restype = ctypes.c_int
_prctl = _libc.prctl
_prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_prctl.restype = ctypes.c_int

Stdio = int | IO[Any] | None


def exit_status(returncode: int) -> int:
    """A Popen returncode as a shell reports it: 128 + N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True, slots=True)
class _ChildPlan:
    netns_fd: int | None
    creds: Credentials
    cwd: str | None
    no_new_privs: bool
    seccomp: Any  # a built pyseccomp SyscallFilter, or None
    err_fd: int


# Steps of the child's setup, as reported back through the error pipe.
STEP_NETNS = "netns"
STEP_USER = "user"
STEP_CWD = "cwd"
STEP_NNP = "nnp"
STEP_SECCOMP = "seccomp"


def _child_setup(plan: _ChildPlan) -> Callable[[], None]:
    """The preexec step: only system calls, no imports, no lookups (see module docstring)."""

    def setup() -> None:
        step, what = STEP_NETNS, "enter the network namespace"
        try:
            if plan.netns_fd is not None and _setns(plan.netns_fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            if plan.creds.change:
                step, what = STEP_USER, f"switch to user {plan.creds.user}"
                os.setgroups(plan.creds.groups)
                os.setresgid(plan.creds.gid, plan.creds.gid, plan.creds.gid)
                os.setresuid(plan.creds.uid, plan.creds.uid, plan.creds.uid)
            if plan.cwd is not None:
                step, what = STEP_CWD, f"change directory to {plan.cwd} as {plan.creds.user}"
                os.chdir(plan.cwd)
            if plan.no_new_privs:
                step, what = STEP_NNP, "set no_new_privs"
                if _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            if plan.seccomp is not None:
                step, what = STEP_SECCOMP, "load the seccomp filter"
                plan.seccomp.load()
        except BaseException as exc:
            err = getattr(exc, "errno", 0) or 0
            text = getattr(exc, "strerror", None) or str(exc)
            os.write(plan.err_fd, f"{step}\0{err}\0cannot {what}: {text}".encode(errors="replace"))
            raise

    return setup


def child_error(report: bytes) -> NetjailError:
    """The NetjailError for what a failed child wrote to the error pipe ("step\0errno\0text")."""
    parts = report.decode("utf-8", "replace").split("\0", 2)
    if len(parts) != 3:
        return OperationFailed("the jailed command could not be set up")
    step, err_text, text = parts
    err = int(err_text) if err_text.isdigit() else 0
    if step == STEP_CWD:
        return BadInput(text)
    if step == STEP_SECCOMP and err == errno.EINVAL:
        return UnsupportedEnvironment(f"{text} (no CONFIG_SECCOMP_FILTER?)")
    if step in (STEP_NETNS, STEP_USER) and err in (errno.EPERM, errno.EACCES):
        return InsufficientPrivilege(f"{text} (needs root)")
    return OperationFailed(text)


def _open_netns(netns: str) -> int:
    path = netns if "/" in netns else f"{NETNS_RUN_DIR}/{netns}"
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BadInput(f"no network namespace {netns!r} (not in {NETNS_RUN_DIR})") from None
    except PermissionError:
        raise InsufficientPrivilege(f"cannot open network namespace {netns!r}: needs root") from None
    except OSError as exc:
        raise OperationFailed(f"cannot open network namespace {netns!r}: {exc.strerror}") from None


def _check_argv(argv: Sequence[str]) -> list[str]:
    args = list(argv)
    if not args or not all(isinstance(a, str) for a in args) or not args[0]:
        raise BadInput("no command given")
    if any("\0" in a for a in args):
        raise BadInput("a command argument contains a NUL byte")
    return args


def spawn_jailed(
    argv: Sequence[str],
    *,
    user: str | None = None,
    netns: str | None = None,
    gid: int | None = None,
    seccomp: bool = False,
    no_new_privs: bool = True,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: Stdio = None,
    stdout: Stdio = None,
    stderr: Stdio = None,
    start_new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `argv` jailed and return at once. stdio is inherited unless given (like Popen).

    `user`: default the invoking user (SUDO_USER under sudo). `netns`: a name in /run/netns or a
    path. `gid`: the primary group to run under (the gid-owner jail). `env`: default ours, with
    HOME/USER/LOGNAME of the target user. Unknown user or command: BadInput.
    """
    args = _check_argv(argv)
    creds = credentials.resolve(user, gid)
    environ = credentials.environment(creds, env)
    flt = seccomp_filter.build_socket_filter() if seccomp else None
    netns_fd = _open_netns(netns) if netns is not None else None
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    plan = _ChildPlan(netns_fd, creds, cwd, no_new_privs, flt, err_w)
    try:
        return subprocess.Popen(
            args,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=environ,
            close_fds=True,
            restore_signals=True,
            start_new_session=start_new_session,
            preexec_fn=_child_setup(plan),
        )
    except subprocess.SubprocessError:
        os.close(err_w)
        err_w = -1
        raise child_error(os.read(err_r, 4096)) from None
    except FileNotFoundError:
        raise BadInput(f"command not found: {args[0]}") from None
    except PermissionError:
        raise BadInput(f"cannot execute {args[0]} as {creds.user}: permission denied") from None
    except OSError as exc:
        raise OperationFailed(f"cannot execute {args[0]}: {exc.strerror or exc}") from None
    finally:
        for fd in (err_r, err_w, netns_fd):
            if fd is not None and fd >= 0:
                os.close(fd)


class ForegroundSignals:
    """Signal handling of the parent while the jailed command runs in the foreground.

    The child shares our process group, so the terminal delivers Ctrl-C / Ctrl-\\ to it directly;
    we only must not die of them. SIGTERM and SIGHUP sent to us are passed on, so the caller
    still gets to clean up after the child. Handlers are Python functions, not SIG_IGN: the
    disposition of a caught signal resets to default at exec, an ignored one would be inherited.
    """

    RELAYED = (signal.SIGTERM, signal.SIGHUP)
    SWALLOWED = (signal.SIGINT, signal.SIGQUIT)

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []
        self._old: dict[int, Any] = {}

    def _relay(self, signum: int, _frame: FrameType | None) -> None:
        if self.proc is None:
            self.pending.append(signum)
        elif self.proc.poll() is None:
            self.proc.send_signal(signum)

    def _swallow(self, _signum: int, _frame: FrameType | None) -> None:
        pass

    def __enter__(self) -> ForegroundSignals:
        for sig in self.RELAYED:
            self._old[sig] = signal.signal(sig, self._relay)
        for sig in self.SWALLOWED:
            self._old[sig] = signal.signal(sig, self._swallow)
        return self

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        for signum in self.pending:
            proc.send_signal(signum)
        self.pending.clear()

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run_jailed(
    argv: Sequence[str],
    *,
    user: str | None = None,
    netns: str | None = None,
    gid: int | None = None,
    seccomp: bool = False,
    no_new_privs: bool = True,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `argv` jailed in the foreground, terminal passed through, and return its exit code
    (128 + N when signal N killed it). Called from a thread other than the main one, signals
    are left alone (only the main thread may handle them)."""
    kwargs: dict[str, Any] = dict(
        user=user, netns=netns, gid=gid, seccomp=seccomp, no_new_privs=no_new_privs, cwd=cwd, env=env
    )
    if threading.current_thread() is not threading.main_thread():
        return exit_status(spawn_jailed(argv, **kwargs).wait())
    with ForegroundSignals() as relay:
        proc = spawn_jailed(argv, **kwargs)
        relay.attach(proc)
        return exit_status(proc.wait())

"""Start a command already jailed: in a network namespace, as a user, under a group, under seccomp.

The child is set up between fork and exec, in this order:

0. a session of its own (setsid, by Popen), with a fresh pty as its controlling terminal when
   netjail has a terminal (see `terminal`): it never shares netjail's terminal or job,
1. enter the network namespace (setns on /run/netns/NAME; needs root, so it comes first),
2. become the target user: setgroups (their groups), setresgid (the jail group when given,
   else theirs), setresuid, which also drops every capability root had,
3. chdir as that user, so it cannot start inside a directory only root may enter: to the
   `cwd` asked for, else (in order, the first that works) a preferred one, the user's home, /,
4. set no_new_privs: setuid/setgid bits and file capabilities stop working, so the command
   cannot climb back (sudo to nsenter out of the namespace, a setgid binary whose sockets the
   gid-owner rule no longer matches),
5. load the seccomp filter when asked,

then exec, with the minimal environment of `credentials.environment`. Everything that needs a
lookup (user, groups, command path, filter program) is done in the parent first, so the forked
child only makes system calls: safe even when the parent has threads. A failure in the child
comes back as one line naming the step, through a pipe of ours (subprocess only reports
"Exception occurred in preexec_fn").

A jailed root stays root: it may leave a netns or change its group again. Jail users, not root.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import signal
import subprocess
import termios
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
from netjail.backends.launch import credentials, seccomp_filter, terminal
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
    cwds: tuple[str, ...]  # tried in order; the last one's failure is the error
    no_new_privs: bool
    ctty_fd: int | None  # the pty slave to make the controlling terminal
    seccomp: Any  # a built pyseccomp SyscallFilter, or None
    err_fd: int


# Steps of the child's setup, as reported back through the error pipe.
STEP_TTY = "tty"
STEP_NETNS = "netns"
STEP_USER = "user"
STEP_CWD = "cwd"
STEP_NNP = "nnp"
STEP_SECCOMP = "seccomp"


def _child_setup(plan: _ChildPlan) -> Callable[[], None]:
    """The preexec step: only system calls, no imports, no lookups (see module docstring)."""

    def setup() -> None:
        step, what = STEP_TTY, "take the new terminal"
        try:
            if plan.ctty_fd is not None:
                fcntl.ioctl(plan.ctty_fd, termios.TIOCSCTTY, 0)
            step, what = STEP_NETNS, "enter the network namespace"
            if plan.netns_fd is not None and _setns(plan.netns_fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            if plan.creds.change:
                step, what = STEP_USER, f"switch to user {plan.creds.user}"
                os.setgroups(plan.creds.groups)
                os.setresgid(plan.creds.gid, plan.creds.gid, plan.creds.gid)
                os.setresuid(plan.creds.uid, plan.creds.uid, plan.creds.uid)
            for i, cwd in enumerate(plan.cwds):
                step, what = STEP_CWD, f"change directory to {cwd} as {plan.creds.user}"
                try:
                    os.chdir(cwd)
                    break
                except OSError:
                    if i == len(plan.cwds) - 1:
                        raise
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
    preferred_cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    keep_env: Sequence[str] = (),
    executable: str | None = None,
    stdin: Stdio = None,
    stdout: Stdio = None,
    stderr: Stdio = None,
    ctty: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` jailed, in a new session, and return at once. stdio is inherited unless
    given (like Popen); `ctty`: a pty slave to make its controlling terminal.

    `user`: default the invoking user (SUDO_USER under sudo). `netns`: a name in /run/netns or a
    path. `gid`: the primary group to run under (the gid-owner jail). `cwd`: the directory to
    start in (BadInput when the user cannot enter it); without it `preferred_cwd` if the user can
    enter it, else their home, else /. Environment: `credentials.environment` with `keep_env`
    from ours and `env` on top. `executable`: the program to run, argv[0] only its name (default:
    argv[0] looked up in netjail's PATH, as the operator's shell would).
    Unknown user or command: BadInput.
    """
    args = _check_argv(argv)
    if executable is None and "/" not in args[0]:
        # found as the operator's shell would find it; the command itself gets the safe PATH
        executable = shutil.which(args[0], path=os.environ.get("PATH", os.defpath))
        if executable is None:
            raise BadInput(f"command not found: {args[0]}")
    creds = credentials.resolve(user, gid)
    environ = credentials.environment(creds, keep_env, env)
    cwds = (cwd,) if cwd is not None else (*([preferred_cwd] if preferred_cwd else []), creds.home, "/")
    flt = seccomp_filter.build_socket_filter() if seccomp else None
    netns_fd = _open_netns(netns) if netns is not None else None
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    plan = _ChildPlan(netns_fd, creds, cwds, no_new_privs, ctty, flt, err_w)
    try:
        return subprocess.Popen(
            args,
            executable=executable,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=environ,
            close_fds=True,
            restore_signals=True,
            start_new_session=True,
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

    The command runs in a session of its own, so a Ctrl-C that reaches netjail (its terminal's
    process group, or a kill) is no longer delivered to it directly: SIGINT, SIGQUIT, SIGTERM
    and SIGHUP sent to us are passed on to the command's process group, and we stay to clean up
    after it. (A Ctrl-C typed while the pty relay runs never reaches us: the pty's own line
    discipline sends it to the command.) Handlers are Python functions, not SIG_IGN: the
    disposition of a caught signal resets to default at exec, an ignored one would be inherited.
    """

    RELAYED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []
        self._old: dict[int, Any] = {}

    def _relay(self, signum: int, _frame: FrameType | None) -> None:
        if self.proc is None:
            self.pending.append(signum)
        else:
            self._send(self.proc, signum)

    @staticmethod
    def _send(proc: subprocess.Popen[bytes], signum: int) -> None:
        # Our unreaped child: its PID (= its process group, it is a session leader) is not reused.
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signum)

    def __enter__(self) -> ForegroundSignals:
        for sig in self.RELAYED:
            self._old[sig] = signal.signal(sig, self._relay)
        return self

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        for signum in self.pending:
            self._send(proc, signum)
        self.pending.clear()

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


Starter = Callable[[Stdio, Stdio, Stdio, int | None], subprocess.Popen[bytes]]


def run_foreground(start: Starter) -> int:
    """Run what `start(stdin, stdout, stderr, ctty)` spawns in the foreground and return its
    exit status (128 + N for signal N). When netjail has a terminal on any of fds 0-2, the
    command gets a fresh pty on those instead, relayed to ours (`terminal`); else the fds as
    they are. Signals are handled only on the main thread (no other may)."""
    main = threading.current_thread() is threading.main_thread()
    with ForegroundSignals() if main else contextlib.nullcontext() as signals:
        ttys = terminal.terminal_fds()
        if not ttys:
            proc = start(None, None, None, None)
            if signals is not None:
                signals.attach(proc)
            return exit_status(proc.wait())
        with terminal.fresh_pty(ttys) as pty:
            proc = start(*pty.stdio(), pty.slave)
            if signals is not None:
                signals.attach(proc)
            pty.close_slave()
            pidfd = os.pidfd_open(proc.pid)
            try:
                terminal.relay(pty, pidfd)
            finally:
                os.close(pidfd)
            return exit_status(proc.wait())


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
    keep_env: Sequence[str] = (),
) -> int:
    """Run `argv` jailed in the foreground (`run_foreground`) and return its exit code."""
    kwargs: dict[str, Any] = dict(
        user=user,
        netns=netns,
        gid=gid,
        seccomp=seccomp,
        no_new_privs=no_new_privs,
        cwd=cwd,
        env=env,
        keep_env=keep_env,
    )

    def start(stdin: Stdio, stdout: Stdio, stderr: Stdio, ctty: int | None) -> subprocess.Popen[bytes]:
        return spawn_jailed(argv, stdin=stdin, stdout=stdout, stderr=stderr, ctty=ctty, **kwargs)

    return run_foreground(start)

"""Domain errors, each carrying the documented exit code of every netjail command.

OS and library errors are translated into these at the boundary of the engine, so the CLI
prints one line and the TUI one notification, never a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PRIVILEGE = 3
EXIT_UNSUPPORTED = 4


class NetjailError(Exception):
    """Base of every error the engine reports to a user."""

    exit_code = EXIT_FAILED


class OperationFailed(NetjailError):
    """The request was valid but the kernel or a tool refused it."""

    exit_code = EXIT_FAILED


class BadInput(NetjailError):
    """Malformed or refused input: unknown PID, protected process, bad CIDR ..."""

    exit_code = EXIT_BAD_INPUT


class NoSuchProcess(BadInput):
    """The PID does not exist, or it now names another process (start time changed)."""


class ProtectedProcess(BadInput):
    """PID 1, a kernel thread, netjail itself or one of its ancestors (needs --force)."""


class ForeignMark(BadInput):
    """A socket to jail already carries another program's mark, outside netjail's range
    (policy routing, a VPN may rely on it): re-marking it needs --force."""


class InsufficientPrivilege(NetjailError):
    """The action needs root (CAP_NET_ADMIN and write access to cgroup2)."""

    exit_code = EXIT_PRIVILEGE


class UnsupportedEnvironment(NetjailError):
    """A kernel feature or tool netjail needs is missing here."""

    exit_code = EXIT_UNSUPPORTED

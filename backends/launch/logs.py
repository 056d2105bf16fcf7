"""Where a command launched in the background writes: STATE_DIR/logs/<jail>.log.

Root opens these files for a command that may run as anyone, in a directory whose parent other
code hardens (the state directory): the logs directory must be a real directory of ours that
nobody else may write to, and the file is opened through it without following a symlink, so a
planted `logs -> /etc` or `<jail>.log -> /etc/shadow` makes the launch refuse instead of root
appending to someone else's file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from netjail.backends.errors import InsufficientPrivilege, OperationFailed

LOG_DIR = "logs"


def log_path(state_dir: Path, jail: str) -> Path:
    return state_dir / LOG_DIR / f"{jail}.log"


def _open_log_dir(state_dir: Path) -> int:
    logs = state_dir / LOG_DIR
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.mkdir(logs, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise OperationFailed(f"cannot create {logs}: {exc.strerror}") from None
    try:
        fd = os.open(logs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise InsufficientPrivilege(
            f"refusing to write launch logs: {logs} is not a plain directory ({exc.strerror})"
        ) from None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        raise InsufficientPrivilege(
            f"refusing to write launch logs: {logs} is owned by uid {st.st_uid} or writable by others"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.fchmod(fd, 0o700)
    return fd


def open_log(state_dir: Path, jail: str, header: str) -> tuple[Path, int]:
    """(path, fd open for appending) of the jail's log, `header` written first. The fd is
    close-on-exec: pass it to Popen as stdout/stderr, then close it."""
    dir_fd = _open_log_dir(state_dir)
    name = f"{jail}.log"
    try:
        fd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
            0o600,
            dir_fd=dir_fd,
        )
    except OSError as exc:
        raise InsufficientPrivilege(
            f"refusing to write the launch log {state_dir / LOG_DIR / name}: {exc.strerror}"
        ) from None
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise InsufficientPrivilege(
            f"refusing to write the launch log {state_dir / LOG_DIR / name}: not a plain file"
        )
    os.set_blocking(fd, True)
    os.write(fd, header.encode(errors="replace"))
    return log_path(state_dir, jail), fd

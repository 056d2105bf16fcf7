"""Where a command launched in the background writes: STATE_DIR/logs/<jail>.log.

Root opens these files for a command that may run as anyone. The state store owns the
directory checks (owner, mode, no symlink anywhere on the way, dir-fd-relative opens with
O_NOFOLLOW: see docs/security.md); this module only refuses what is not a plain file of one link
(a hard link to someone else's file would make root append to it) and writes the header.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from netjail.backends.errors import InsufficientPrivilege
from netjail.backends.jails.state import Store

LOG_DIR = "logs"


def log_path(state_dir: Path, jail: str) -> Path:
    return state_dir / LOG_DIR / f"{jail}.log"


def open_log(store: Store, jail: str, header: str) -> tuple[Path, int]:
    """(path, fd open for appending) of the jail's log, `header` written first. The fd is
    close-on-exec: pass it to Popen as stdout/stderr, then close it."""
    fd = store.open_log(jail)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise InsufficientPrivilege(
            f"refusing to write the launch log {log_path(store.dir, jail)}: not a plain file"
        )
    os.write(fd, header.encode(errors="replace"))
    return log_path(store.dir, jail), fd

"""Where cgroup2 lives on this machine and which cgroup2 group a process is in.

cgroup2 is mounted either alone at /sys/fs/cgroup ("pure", systemd's unified layout) or next to
the v1 controller hierarchies, usually at /sys/fs/cgroup/unified ("hybrid"). Both work for
`-m cgroup --path`: the path is resolved in the v2 hierarchy wherever it is mounted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from netjail.backends.errors import NoSuchProcess

MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Cgroup2Mount:
    path: str  # mount point, e.g. "/sys/fs/cgroup/unified"
    mode: str  # "pure" (no v1 hierarchies mounted) | "hybrid"
    root: str = "/"  # the hierarchy's directory shown at the mount point ("/" unless bind-mounted)

    def dir_of(self, cgroup: str) -> Path:
        """The directory of a cgroup2 path such as "/netjail/web" (from /proc/PID/cgroup)."""
        return Path(self.path, cgroup.lstrip("/"))


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> Cgroup2Mount | None:
    """The cgroup2 mount described by /proc/PID/mountinfo text, None when cgroup2 is not mounted.

    With several cgroup2 mounts (bind mounts in containers) the first showing the whole
    hierarchy wins; otherwise the first one.
    """
    v2: list[tuple[str, str]] = []  # (mount point, root)
    has_v1 = False
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) <= sep + 1:
            continue
        fstype = fields[sep + 1]
        if fstype == "cgroup2":
            v2.append((_unescape(fields[4]), _unescape(fields[3])))
        elif fstype == "cgroup":
            has_v1 = True
    if not v2:
        return None
    path, root = next(((p, r) for p, r in v2 if r == "/"), v2[0])
    return Cgroup2Mount(path=path, mode="hybrid" if has_v1 else "pure", root=root)


def find_cgroup2(mountinfo: Path = MOUNTINFO) -> Cgroup2Mount | None:
    """The cgroup2 mount seen by this process, None when cgroup2 is not mounted."""
    return parse_mountinfo(mountinfo.read_text())


def parse_cgroup(text: str) -> str:
    """The cgroup2 path from /proc/PID/cgroup text (its "0::" line), "" when there is none."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def read_cgroup(pid: int | str = "self") -> str:
    """The cgroup2 path of a process, e.g. "/netjail/web"; "" on a kernel without cgroup2.

    Raises NoSuchProcess when the process is gone.
    """
    try:  # a delegated subtree's names are the user's bytes, not always UTF-8
        return parse_cgroup(Path(f"/proc/{pid}/cgroup").read_text(errors="surrogateescape"))
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise NoSuchProcess(f"no process {pid}") from exc

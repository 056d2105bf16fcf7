"""The processes a reconciliation or a block reads: only the ones it asks for, unless it must
look at all of them.

cgroup and netns jails know their members (cgroup.procs, the namespace's processes): reading
those members and their sockets is all they need. owner, gid and seccomp jails are about any
process of a user, a group or a tree, so they iterate; the first iteration takes one
system-wide snapshot, and from then on this is that snapshot. Either way the caller gets the
same answers: a lookup by PID reads that process fresh, iteration sees every process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from netjail.backends.model import Process
from netjail.backends.system.inventory import Inventory


class ScopedProcesses(Mapping[int, Process]):
    def __init__(self, inventory: Inventory, prefetch: Iterable[int] = ()) -> None:
        self._inventory = inventory
        self._known: dict[int, Process | None] = {}
        self._whole: dict[int, Process] | None = None
        self.prefetch(prefetch)

    @property
    def whole_system(self) -> bool:
        """True once something iterated (and so a system-wide snapshot was taken)."""
        return self._whole is not None

    def prefetch(self, pids: Iterable[int]) -> None:
        """Read these processes now, together (one socket-table read per namespace)."""
        if self._whole is not None:
            return
        todo = [p for p in pids if p not in self._known]
        if todo:
            found = self._inventory.lookup_many(todo)
            self._known.update({p: found.get(p) for p in todo})

    def _get(self, pid: int) -> Process | None:
        if self._whole is not None:
            return self._whole.get(pid)
        if pid not in self._known:
            self.prefetch([pid])
        return self._known[pid]

    def __getitem__(self, pid: int) -> Process:
        found = self._get(pid)
        if found is None:
            raise KeyError(pid)
        return found

    def __contains__(self, pid: object) -> bool:
        return isinstance(pid, int) and self._get(pid) is not None

    def _all(self) -> dict[int, Process]:
        if self._whole is None:
            snap = self._inventory.snapshot(all_processes=True)
            self._whole = {p.pid: p for p in snap.processes}
        return self._whole

    def __iter__(self) -> Iterator[int]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

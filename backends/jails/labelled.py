"""`Engine.snapshot` without the engine: processes and sockets labelled with their jail.

`netjail ps` needs only this, the state file and the inventory; importing the engine would
also load the firewall, launch and reconcile modules (import cost, not work), so the CLI calls
this directly and the engine delegates here.
"""

from __future__ import annotations

import os
from dataclasses import replace

from netjail.backends.errors import NetjailError
from netjail.backends.jails import cgroups as jail_cgroups
from netjail.backends.jails.state import LAUNCHER, Store
from netjail.backends.model import Snapshot
from netjail.backends.system.inventory import Inventory


def labelled_snapshot(store: Store, inventory: Inventory, *, all_processes: bool = True) -> Snapshot:
    """Read without the lock: the state file is replaced atomically."""
    by_pid: dict[int, str] = {}
    try:
        for state in store.load().jails.values():
            by_pid.update((m.pid, state.name) for m in state.members if m.status != LAUNCHER)
    except NetjailError:
        if os.geteuid() == 0:
            raise  # root: an unsafe state directory (docs/security.md §3) refuses this command too
        # unreadable state (not root): cgroup paths still tell
    prefix = f"/{jail_cgroups.parent_name()}/"
    # a jailed process is worth showing even without sockets (a seccomp'd command has none)
    snap = inventory.snapshot(all_processes or bool(by_pid))
    labelled = []
    for p in snap.processes:
        name = p.cgroup[len(prefix) :].split("/")[0] if p.cgroup.startswith(prefix) else None
        name = name or by_pid.get(p.pid)
        if name is None and not all_processes and not p.sockets and not p.unfilterable:
            continue
        labelled.append(p if name is None else replace(p, jail=name))
    return Snapshot(tuple(labelled), snap.taken_at, snap.own_netns, snap.denied)

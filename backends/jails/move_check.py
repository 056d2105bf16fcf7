"""What a write of a PID to `cgroup.procs` moved, when the process meant died around it (pure).

A PID is not an identity (docs/kernel-facts.md #8), and `cgroup.procs` only takes PIDs: between the
check of a target and the write, the target may exit, be reaped, and its PID be handed to a new
process (a stranger), which the write then moves. A pidfd opened before the check pins the
target itself (not its number): when it says the target has exited after the write, the write
may have landed on the stranger, and this module decides what to do about it.

Reasoning, given that the target was verified (pid, start time) after its pidfd was opened:
- the pidfd says alive after the write: the PID named the target during the write -> moved;
- the PID now names nobody, or still the target (a zombie: its PID cannot be reused yet), or a
  process that is not in the cgroup written to: the write did not move anyone else -> exited;
- a stranger in the cgroup written to: it was born after the target was reaped (so after the
  check) and before the write, or born later to a parent inside that cgroup. fork() starts a
  child in its parent's cgroup, so the parent's cgroup is where the stranger was before the
  write: a parent in the cgroup written to means the stranger was born there (nothing to undo);
  otherwise it goes back to its parent's cgroup. Reading the PID's cgroup just before the write
  would not help: at that moment the PID still named the (verified) target.
- the stranger's parent is gone too (it was reparented): where it started is unknown -> it is
  left where it is, and said so (a jailed stranger shows up in the jail as a member).
clone3(CLONE_INTO_CGROUP) can start a child elsewhere than its parent: that child is restored
to its parent's cgroup, a known imprecision.
"""

from __future__ import annotations

from dataclasses import dataclass

MOVED, EXITED, RESTORE, UNKNOWN = "moved", "exited", "restore", "unknown"


@dataclass(frozen=True, slots=True)
class Seen:
    """A process as read from /proc after the write: its start time and cgroup2 path."""

    start_time: int
    cgroup: str


def after_write(
    target_start: int, alive: bool, now: Seen | None, parent_cgroup: str | None, wrote_to: str
) -> tuple[str, str | None]:
    """(verdict, cgroup to move the PID back to when the verdict is RESTORE)."""
    if alive:
        return MOVED, None
    if now is None or now.start_time == target_start or now.cgroup != wrote_to:
        return EXITED, None
    if parent_cgroup is None:
        return UNKNOWN, None
    if parent_cgroup == wrote_to:
        return EXITED, None  # born where its parent is: nothing of ours to undo
    return RESTORE, parent_cgroup

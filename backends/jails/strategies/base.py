"""The interface every jail strategy implements: what it can do (`info`, which the CLI and the
TUI offer from), the rules it needs, and its part of each reconciliation step (adopt what the
kernel holds, refresh members, upkeep, remove). Defaults are those of a strategy that holds
processes by something netfilter matches and needs nothing kept up between passes.

Kept cheap to import (`netjail list` reads capabilities without the engine): strategy modules
import the kernel-facing modules where they use them.
"""

from __future__ import annotations

from netjail.backends.jails.state import JailState, MemberState, Registry, StrategyName, StrategyState
from netjail.backends.model import StrategyInfo

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from netjail.backends.engine_launch import Launches
    from netjail.backends.firewall.base import JailRules, Match
    from netjail.backends.jails.reconcile import Reconciler
    from netjail.backends.model import LaunchRequest, Process, Socket


class Strategy:
    name: StrategyName
    info: StrategyInfo
    # the jail's own fields (JailState.detail): a subclass of StrategyState in the strategy's
    # module; the base has none (seccomp)
    state_type: type[StrategyState] = StrategyState

    # what `block` takes for this strategy: "pid" (Engine.block: a running process and its
    # tree), "owner" (Engine.block_owner: a user or group), "" (launch only)
    blocks = ""

    def block_state(self, name: str) -> StrategyState:
        """A new jail's own state when `block` creates it."""
        return self.state_type()

    def link_label(self, jail: JailState) -> str:
        """How the jail reaches the world, for the jails table ("": the column does not apply)."""
        return ""

    def holds_cgroup(self, jail: JailState, cgroup: str) -> bool:
        """Whether a process in `cgroup` (relative to the mount) is inside the jail's cgroups."""
        return False

    # ---- rules ----------------------------------------------------------------------------

    def selectors(self, jail: JailState) -> tuple[tuple[Match, ...], tuple[Match, ...]] | None:
        """(OUTPUT, extra INPUT) selectors saying who is jailed, before the socket and
        allow-list parts every such jail shares (rules.address_rules); None: no rules."""
        return None

    def desired_rules(
        self, jail: JailState, sockets: Mapping[int, Iterable[Socket]], unseen: Collection[int]
    ) -> JailRules | None:
        """The rules the jail needs now (None: netfilter has no part in it)."""
        chosen = self.selectors(jail)
        if chosen is None:
            return None
        from netjail.backends.jails.rules import address_rules

        return address_rules(jail, sockets, unseen, *chosen)

    def needs_addresses(self, jail: JailState) -> bool:
        """Whether some socket of the jail is matched by its addresses (sets), not by its mark."""
        return True

    # ---- reconciliation -------------------------------------------------------------------

    def adopt(self, rc: Reconciler, name: str, found: Found) -> JailState | None:
        """A jail of this strategy rebuilt from the kernel objects named `name` (the state file
        lost it), or None when they are not this strategy's. Claims must exclude each other:
        at most one strategy adopts a name."""
        return None

    def found_pids(
        self, rc: Reconciler, jail: JailState, alive: list[MemberState], procs: Mapping[int, Process]
    ) -> list[int]:
        """PIDs the kernel says the jail holds now (new ones join as members)."""
        return []

    def refresh(self, rc: Reconciler, jail: JailState, procs: Mapping[int, Process]) -> bool:
        """Bring the member list up to date; False when the jail has nothing left to hold."""
        from netjail.backends.jails.reconcile import is_alive
        from netjail.backends.system import identity

        alive = [m for m in jail.members if is_alive(m)]
        found = self.found_pids(rc, jail, alive, procs)
        alive = self.still_members(jail, alive, found)
        known = {m.pid for m in alive}
        origin = alive[0].original_cgroup if alive else "/"
        for pid in found:
            if pid not in known and (stat := identity.read_stat(pid)):
                alive.append(MemberState(pid, stat.start_time, stat.name, origin, root=0))
                known.add(pid)
        jail.members = alive
        return bool(alive) or jail.keep or self.outlives_members

    def still_members(self, jail: JailState, alive: list[MemberState], found: list[int]) -> list[MemberState]:
        """Which live members stay members (all of them, unless membership can be lost)."""
        return alive

    # a jail about processes to come (owner) stays when its last process exits
    outlives_members = False

    def stopped_units(self, rc: Reconciler, jail: JailState) -> str:
        """A note suffix naming systemd units whose stop took the jail's members with them."""
        return ""

    def upkeep(self, rc: Reconciler, jail: JailState) -> list[str]:
        """What a live jail needs each pass besides its rules (re-created kernel objects ...)."""
        return []

    def unseen(self, rc: Reconciler, jail: JailState, held: list[Socket]) -> set[int]:
        """Inodes of the sockets in `held` (the members') created outside what holds the jail:
        they keep their address selectors (cgroup: issue 8 #5)."""
        return set()

    # ---- releasing members (strategies whose info.member_release is set) -------------------

    def release_members(
        self,
        rc: Reconciler,
        jail: JailState,
        members: list[MemberState],
        whole: bool,
        leaving: set[int],
        origins: dict[int, str],
        notes: list[str],
    ) -> set[str]:
        """Take `members` (all of them when `whole`) out of what holds them, adding the PIDs
        that went with them to `leaving`. Returns what was let go (cgroup: sub-cgroups), for
        holds_others, forget_released and drop_released. Others release only as a whole jail:
        remove() does it."""
        return set()

    def holds_others(self, rc: Reconciler, jail: JailState, released: set[str]) -> bool:
        """Whether the jail still holds processes that are not members (children born in it)."""
        return False

    def forget_released(self, jail: JailState, released: set[str]) -> None:
        """Drop what release_members let go from the jail's state (the jail stays)."""

    def drop_released(self, rc: Reconciler, released: set[str], origins: dict[int, str]) -> None:
        """Remove the kernel objects let go, once the jail's rules no longer name them."""

    def remove(
        self, rc: Reconciler, reg: Registry, jail: JailState, origins: dict[int, str] | None
    ) -> list[str]:
        """Undo the strategy's own kernel objects (its rules are gone already). Returns notes."""
        return []

    # ---- launching (strategies whose info.launch is set) -------------------------------------

    launch_needs_root = True  # seccomp: a filter needs no privilege (then no registry entry)
    spawn_seccomp = False  # the command starts with the socket() filter (launch/seccomp_filter)

    def check_launch(self, launches: Launches, req: LaunchRequest, allow: list[str]) -> None:
        """Refuse what this strategy cannot launch as asked, before anything is touched."""
        from netjail.backends.errors import BadInput

        if req.link:
            raise BadInput("--link applies to --netns with --allow (without one the jail has loopback only)")

    def launch_state(self, jail: JailState, req: LaunchRequest, reg: Registry, allow: list[str]) -> None:
        """Fill in the new launch jail's own fields before it is journalled."""

    def create_launch_objects(self, launches: Launches, jail: JailState, link: bool) -> list[str]:
        """Create the kernel objects the jail needs before its rules are loaded. Returns notes."""
        return []

    def after_launch_rules(self, launches: Launches, jail: JailState) -> None:
        """What starts once the jail's rules are loaded (and before its command)."""

    def launch_gid(self, jail: JailState) -> int | None:
        """The group the command runs under, when the strategy picks it."""
        return None

    def launch_netns(self, jail: JailState) -> str | None:
        """The network namespace (its name in /run/netns) the command runs in, if its own."""
        return None


class Found:
    """Kernel objects with netjail names, read once per adoption pass."""

    __slots__ = ("cgroups", "namespaces", "orphan", "rules")

    def __init__(self, cgroups: set[str], namespaces: set[str], rules: JailRules | None) -> None:
        self.cgroups = cgroups
        self.namespaces = namespaces
        self.rules = rules
        self.orphan = False  # set by a strategy that recognises the objects but finds no process

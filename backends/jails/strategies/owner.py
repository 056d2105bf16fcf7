"""owner: every process of a user or group, now and later (`-m owner`, OUTPUT only)."""

from __future__ import annotations

from netjail.backends.jails.state import JailState, MemberState, StrategyName, StrategyState, detail_of
from netjail.backends.jails.strategies.base import Found, Strategy
from netjail.backends.model import StrategyInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from netjail.backends.firewall.base import Match
    from netjail.backends.jails.reconcile import Reconciler
    from netjail.backends.model import Process


class OwnerState(StrategyState):
    """owner: every process of this user, or (uid None) of this group."""

    __slots__ = FIELDS = ("uid", "gid")

    def __init__(self, uid: int | None = None, gid: int | None = None) -> None:
        self.uid = uid
        self.gid = gid


def owner_state(jail: JailState) -> OwnerState:
    return detail_of(jail, OwnerState)


def owner_selectors(jail: JailState) -> tuple[tuple[Match, ...], tuple[Match, ...]] | None:
    from netjail.backends.firewall.base import Match
    from netjail.backends.jails.rules import FAMILIES

    own = owner_state(jail)
    if own.uid is not None:
        return tuple(Match(fam, uid_owner=own.uid) for fam in FAMILIES), ()
    if own.gid is not None:
        return tuple(Match(fam, gid_owner=own.gid) for fam in FAMILIES), ()
    return None


def owner_rule(found: Found) -> tuple[int | None, int | None] | None:
    """(uid, gid) of the first owner match among the rules read back, if any."""
    owners = [
        m
        for m in (found.rules.out_selectors if found.rules else ())
        if m.uid_owner is not None or m.gid_owner is not None
    ]
    return (owners[0].uid_owner, owners[0].gid_owner) if owners else None


class Owner(Strategy):
    name = StrategyName.OWNER
    state_type = OwnerState
    blocks = "owner"
    info = StrategyInfo(
        name="owner",
        description="every process of a user or group, now and later (iptables -m owner)",
        live_process=True,
        launch=False,
        allow_list=True,
        counters=True,
    )
    outlives_members = True  # about the user's processes to come as much as the current ones

    def selectors(self, jail: JailState) -> tuple[tuple[Match, ...], tuple[Match, ...]] | None:
        return owner_selectors(jail)

    def adopt(self, rc: Reconciler, name: str, found: Found) -> JailState | None:
        from netjail.backends.launch import groups

        owner = owner_rule(found)
        if owner is None or (owner[1] is not None and groups.group_gid(groups.group_name(name)) == owner[1]):
            return None  # none, or the group netjail made for this jail: a gid jail's
        return JailState(name, StrategyName.OWNER, detail=OwnerState(uid=owner[0], gid=owner[1]))

    def found_pids(
        self, rc: Reconciler, jail: JailState, alive: list[MemberState], procs: Mapping[int, Process]
    ) -> list[int]:
        own = owner_state(jail)
        return [
            p.pid
            for p in procs.values()
            if (own.uid is not None and p.uid == own.uid) or (own.uid is None and p.gid == own.gid)
        ]

    def still_members(self, jail: JailState, alive: list[MemberState], found: list[int]) -> list[MemberState]:
        return [m for m in alive if m.pid in found]  # a process that changed user left


STRATEGY = Owner()

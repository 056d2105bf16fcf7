"""gid: a command launched under a dedicated group whose packets `-m owner --gid-owner` drops."""

from __future__ import annotations

from netjail.backends.jails.state import (
    JailState,
    MemberState,
    Registry,
    StrategyName,
    StrategyState,
    detail_of,
)
from netjail.backends.jails.strategies.base import Found, Strategy
from netjail.backends.jails.strategies.owner import owner_rule
from netjail.backends.model import StrategyInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from netjail.backends.engine_launch import Launches
    from netjail.backends.firewall.base import Match
    from netjail.backends.jails.reconcile import Reconciler
    from netjail.backends.model import LaunchRequest, Process


class GidState(StrategyState):
    """gid: the group the command runs under; whether netjail created it (then it goes with
    the jail)."""

    __slots__ = FIELDS = ("gid", "group_created")

    def __init__(self, gid: int | None = None, group_created: bool = False) -> None:
        self.gid = gid
        self.group_created = group_created


def gid_state(jail: JailState) -> GidState:
    return detail_of(jail, GidState)


class Gid(Strategy):
    name = StrategyName.GID
    state_type = GidState
    info = StrategyInfo(
        name="gid",
        description="run under a dedicated group whose packets an -m owner --gid-owner rule drops",
        live_process=False,
        launch=True,
        allow_list=True,
        counters=True,
        loopback_option=True,
        keep_option=True,
        effect="under a group whose packets are dropped",
    )

    def selectors(self, jail: JailState) -> tuple[tuple[Match, ...], tuple[Match, ...]] | None:
        from netjail.backends.firewall.base import Match
        from netjail.backends.jails.rules import FAMILIES

        grp = gid_state(jail)
        if grp.gid is None:
            return None
        return tuple(Match(fam, gid_owner=grp.gid) for fam in FAMILIES), ()

    def adopt(self, rc: Reconciler, name: str, found: Found) -> JailState | None:
        """Owner rules whose group is the one netjail creates for this jail's name."""
        from netjail.backends.launch import groups

        owner = owner_rule(found)
        if owner is None or owner[1] is None or groups.group_gid(groups.group_name(name)) != owner[1]:
            return None
        return JailState(name, StrategyName.GID, detail=GidState(gid=owner[1], group_created=True))

    def check_launch(self, launches: Launches, req: LaunchRequest, allow: list[str]) -> None:
        super().check_launch(launches, req, allow)
        if req.gid is not None and not req.force:
            launches.refuse_shared_gid(req.gid)

    def launch_state(self, jail: JailState, req: LaunchRequest, reg: Registry, allow: list[str]) -> None:
        from netjail.backends.launch import groups

        grp = gid_state(jail)
        grp.gid = req.gid
        grp.group_created = req.gid is None and groups.group_gid(groups.group_name(jail.name)) is None

    def create_launch_objects(self, launches: Launches, jail: JailState, link: bool) -> list[str]:
        grp = gid_state(jail)
        if grp.gid is None:
            from netjail.backends.launch import groups

            grp.gid, _ = groups.ensure_group(jail.name)
        return []

    def launch_gid(self, jail: JailState) -> int | None:
        return gid_state(jail).gid

    def found_pids(
        self, rc: Reconciler, jail: JailState, alive: list[MemberState], procs: Mapping[int, Process]
    ) -> list[int]:
        gid = gid_state(jail).gid
        return [p.pid for p in procs.values() if p.gid == gid]

    def remove(
        self, rc: Reconciler, reg: Registry, jail: JailState, origins: dict[int, str] | None
    ) -> list[str]:
        if gid_state(jail).group_created:
            from netjail.backends.launch import groups

            groups.remove_group(jail.name)
        return []


STRATEGY = Gid()

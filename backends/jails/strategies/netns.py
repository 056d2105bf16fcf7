"""netns: a command launched in its own network namespace, loopback only or with a link (pasta,
else a veth pair with forwarding and NAT) whose traffic passes the allow-list."""

from __future__ import annotations

from pathlib import Path

from netjail.backends.jails.state import (
    LAUNCHER,
    JailState,
    MemberState,
    Registry,
    StrategyName,
    StrategyState,
    detail_of,
)
from netjail.backends.jails.strategies.base import Found, Strategy
from netjail.backends.model import StrategyInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from netjail.backends.engine_launch import Launches
    from netjail.backends.firewall.base import JailRules
    from netjail.backends.jails.reconcile import Reconciler
    from netjail.backends.model import LaunchRequest, Process, Socket


class NetnsState(StrategyState):
    """netns: the namespace's name in /run/netns; how it reaches the world (link: "" loopback
    only, "veth" (+ forwarding, NAT) or "pasta", user-mode: launch/pasta.py); veth: the host end
    of its link; ip_forward v4/v6 before netjail enabled them; pasta's process and cgroup,
    remembered to end them."""

    __slots__ = FIELDS = (
        "netns", "veth", "forwarding_before", "link", "pasta_pid", "pasta_start", "pasta_cgroup",
    )  # fmt: skip

    def __init__(
        self,
        netns: str = "",
        veth: str = "",
        forwarding_before: list[bool] | None = None,
        link: str = "",
        pasta_pid: int = 0,
        pasta_start: int = 0,
        pasta_cgroup: str = "",
    ) -> None:
        self.netns = netns
        self.veth = veth
        self.forwarding_before = forwarding_before
        self.link = link
        self.pasta_pid = pasta_pid
        self.pasta_start = pasta_start
        self.pasta_cgroup = pasta_cgroup


def netns_state(jail: JailState) -> NetnsState:
    return detail_of(jail, NetnsState)


class Netns(Strategy):
    name = StrategyName.NETNS
    state_type = NetnsState
    info = StrategyInfo(
        name="netns",
        description="run in a new network namespace: loopback only, or a link (pasta, else veth) "
        "whose traffic is filtered by the allow-list",
        live_process=False,
        launch=True,
        allow_list=True,
        counters=True,
        keep_option=True,
        effect="in a new network namespace",
    )

    def desired_rules(
        self, jail: JailState, sockets: Mapping[int, Iterable[Socket]], unseen: Collection[int]
    ) -> JailRules | None:
        from netjail.backends.jails.policy import parse_allow
        from netjail.backends.jails.rules import netns_rules

        return netns_rules(jail, [parse_allow(a) for a in jail.allow])

    def link_label(self, jail: JailState) -> str:
        ns = netns_state(jail)
        return ns.link or ("veth" if ns.veth else "none")

    def launch_netns(self, jail: JailState) -> str | None:
        return netns_state(jail).netns or None

    def check_launch(self, launches: Launches, req: LaunchRequest, allow: list[str]) -> None:
        if req.link and not allow:
            super().check_launch(launches, req, allow)

    def launch_state(self, jail: JailState, req: LaunchRequest, reg: Registry, allow: list[str]) -> None:
        from netjail.backends.jails import marks as jail_marks
        from netjail.backends.launch import netns, pasta

        ns = netns_state(jail)
        ns.netns = netns.netns_name(jail.name)
        ns.link = (req.link or ("pasta" if pasta.available() else "veth")) if allow else ""
        ns.veth = netns.host_iface(jail.name) if ns.link == "veth" else ""
        if ns.link == "pasta":
            ns.pasta_cgroup = pasta.cgroup_path(jail.name)
            # pasta's sockets carry it: what arrives for them meets the allow-list
            jail_marks.assign(jail, [j.mark for j in reg.jails.values()])

    def create_launch_objects(self, launches: Launches, jail: JailState, link: bool) -> list[str]:
        from netjail.backends.errors import UnsupportedEnvironment
        from netjail.backends.launch import host_forwarding, netns, pasta
        from netjail.backends.system.cgroupfs import find_cgroup2

        ns = netns_state(jail)
        notes = []
        if ns.link == "veth":
            notes += host_forwarding.veth_notes(jail.name, pasta_missing=not pasta.available())
        # no IPv6 on the link unless it is filtered: it would bypass the allow-list
        filterable = launches.filterable()
        if link and "inet" not in filterable:  # the link always carries IPv4
            raise UnsupportedEnvironment(
                "run --netns --allow needs IPv4 filtering, which this kernel lacks "
                "(see `netjail doctor`): use --gid"
            )
        made = netns.create_netns(
            jail.name,
            veth=ns.link == "veth",
            ipv6="inet6" in filterable,
            firewall=launches.engine.firewall,
        )
        if made.forwarding_before is not None:
            ns.forwarding_before = [made.forwarding_before.ipv4, made.forwarding_before.ipv6]
        if ns.link == "pasta":
            if (found := find_cgroup2()) is None:
                raise UnsupportedEnvironment("cgroup2 is not mounted: a pasta link is jailed by its cgroup")
            pasta.create_cgroup(jail.name, Path(found.path))
            notes += pasta.mark_sockets(jail, Path(found.path))
        return notes

    def after_launch_rules(self, launches: Launches, jail: JailState) -> None:
        """pasta starts once the rules are in: its first packet already meets the allow-list."""
        ns = netns_state(jail)
        if ns.link != "pasta":
            return
        from netjail.backends.launch import netns, pasta
        from netjail.backends.system.cgroupfs import find_cgroup2

        found = find_cgroup2()
        assert found is not None  # create_launch_objects refused a launch without it
        path = str(netns.netns_path(jail.name))
        ipv6 = "inet6" in launches.filterable()
        ns.pasta_pid, ns.pasta_start, _ = pasta.start(jail.name, path, Path(found.path), ipv6=ipv6)

    def adopt(self, rc: Reconciler, name: str, found: Found) -> JailState | None:
        from netjail.backends.jails import cgroups as jail_cgroups
        from netjail.backends.jails.reconcile import members_of
        from netjail.backends.launch import netns, pasta
        from netjail.backends.system import identity

        if name not in found.namespaces:
            return None
        read = netns.read_netns(name)
        ns = NetnsState(netns=read.name if read else "", veth=(read.host_iface or "") if read else "")
        ns.link = "veth" if ns.veth else ""
        linked = jail_cgroups.procs(rc.mount, pasta.cgroup_path(name)) if rc.mount else []
        if name in found.cgroups or linked:
            ns.link, ns.pasta_cgroup = "pasta", pasta.cgroup_path(name)
            if len(linked) == 1 and (stat := identity.read_stat(linked[0])):
                ns.pasta_pid, ns.pasta_start = linked[0], stat.start_time
        return JailState(
            name, StrategyName.NETNS, keep=True, members=members_of(netns.netns_pids(name)), detail=ns
        )

    def found_pids(
        self, rc: Reconciler, jail: JailState, alive: list[MemberState], procs: Mapping[int, Process]
    ) -> list[int]:
        from netjail.backends.launch import netns

        return netns.netns_pids(jail.name)

    def upkeep(self, rc: Reconciler, jail: JailState) -> list[str]:
        """A pasta link that died leaves the jail without network (its rules stay: harmless)."""
        from netjail.backends.launch import pasta

        ns = netns_state(jail)
        if ns.link != "pasta" or not ns.pasta_pid or pasta.alive(ns.pasta_pid, ns.pasta_start):
            return []
        pid, ns.pasta_pid, ns.pasta_start = ns.pasta_pid, 0, 0
        return [f"jail {jail.name!r}: its link (pasta, PID {pid}) exited: the jail has no network any more"]

    def remove(
        self, rc: Reconciler, reg: Registry, jail: JailState, origins: dict[int, str] | None
    ) -> list[str]:
        import contextlib

        from netjail.backends.errors import NetjailError
        from netjail.backends.jails.reconcile import is_alive
        from netjail.backends.launch import netns, pasta

        ns = netns_state(jail)
        notes = []
        left = [m.pid for m in jail.members if is_alive(m) and m.status != LAUNCHER]
        if ns.link == "pasta":  # after its rules: they name pasta's cgroup
            pasta.stop(jail.name, rc.mount, ns.pasta_pid, ns.pasta_start)
        netns.remove_netns(jail.name, nat=ns.link != "pasta", firewall=rc.fw)
        if left:
            notes.append(
                f"jail {jail.name!r}: PID(s) {', '.join(map(str, left))} stay in the "
                "(now unnamed) namespace, with loopback only, until they exit"
            )
        others = [j for j in reg.jails.values() if j.strategy == StrategyName.NETNS and j.name != jail.name]
        before = ns.forwarding_before
        if before is not None and not others:
            with contextlib.suppress(NetjailError):
                netns.set_forwarding(netns.Forwarding(*before))
        return notes


STRATEGY = Netns()

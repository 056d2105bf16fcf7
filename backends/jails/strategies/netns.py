"""netns: a command launched in its own network namespace, loopback only or with a link (pasta,
else a veth pair with forwarding and NAT) whose traffic passes the allow-list."""

from __future__ import annotations

from netjail.backends.jails.state import LAUNCHER, JailState, MemberState, Registry, StrategyName
from netjail.backends.jails.strategies.base import Found, Strategy
from netjail.backends.model import StrategyInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from netjail.backends.firewall.base import JailRules
    from netjail.backends.jails.reconcile import Reconciler
    from netjail.backends.model import Process, Socket


class Netns(Strategy):
    name = StrategyName.NETNS
    info = StrategyInfo(
        name="netns",
        description="run in a new network namespace: loopback only, or a link (pasta, else veth) "
        "whose traffic is filtered by the allow-list",
        live_process=False,
        launch=True,
        allow_list=True,
        counters=True,
    )

    def desired_rules(
        self, jail: JailState, sockets: Mapping[int, Iterable[Socket]], unseen: Collection[int]
    ) -> JailRules | None:
        from netjail.backends.jails.policy import parse_allow
        from netjail.backends.jails.rules import netns_rules

        return netns_rules(jail, [parse_allow(a) for a in jail.allow])

    def adopt(self, rc: Reconciler, name: str, found: Found) -> JailState | None:
        from netjail.backends.jails import cgroups as jail_cgroups
        from netjail.backends.jails.reconcile import members_of
        from netjail.backends.launch import netns, pasta
        from netjail.backends.system import identity

        if name not in found.namespaces:
            return None
        ns = netns.read_netns(name)
        jail = JailState(
            name,
            StrategyName.NETNS,
            netns=ns.name if ns else "",
            veth=(ns.host_iface or "") if ns else "",
            keep=True,
            members=members_of(netns.netns_pids(name)),
        )
        jail.link = "veth" if jail.veth else ""
        linked = jail_cgroups.procs(rc.mount, pasta.cgroup_path(name)) if rc.mount else []
        if name in found.cgroups or linked:
            jail.link, jail.pasta_cgroup = "pasta", pasta.cgroup_path(name)
            if len(linked) == 1 and (stat := identity.read_stat(linked[0])):
                jail.pasta_pid, jail.pasta_start = linked[0], stat.start_time
        return jail

    def found_pids(
        self, rc: Reconciler, jail: JailState, alive: list[MemberState], procs: Mapping[int, Process]
    ) -> list[int]:
        from netjail.backends.launch import netns

        return netns.netns_pids(jail.name)

    def upkeep(self, rc: Reconciler, jail: JailState) -> list[str]:
        """A pasta link that died leaves the jail without network (its rules stay: harmless)."""
        from netjail.backends.launch import pasta

        if jail.link != "pasta" or not jail.pasta_pid or pasta.alive(jail.pasta_pid, jail.pasta_start):
            return []
        pid, jail.pasta_pid, jail.pasta_start = jail.pasta_pid, 0, 0
        return [f"jail {jail.name!r}: its link (pasta, PID {pid}) exited: the jail has no network any more"]

    def remove(
        self, rc: Reconciler, reg: Registry, jail: JailState, origins: dict[int, str] | None
    ) -> list[str]:
        import contextlib

        from netjail.backends.errors import NetjailError
        from netjail.backends.jails.reconcile import is_alive
        from netjail.backends.launch import netns, pasta

        notes = []
        left = [m.pid for m in jail.members if is_alive(m) and m.status != LAUNCHER]
        if jail.link == "pasta":  # after its rules: they name pasta's cgroup
            pasta.stop(jail.name, rc.mount, jail.pasta_pid, jail.pasta_start)
        netns.remove_netns(jail.name, nat=jail.link != "pasta")
        if left:
            notes.append(
                f"jail {jail.name!r}: PID(s) {', '.join(map(str, left))} stay in the "
                "(now unnamed) namespace, with loopback only, until they exit"
            )
        others = [j for j in reg.jails.values() if j.strategy == StrategyName.NETNS and j.name != jail.name]
        if jail.forwarding_before is not None and not others:
            with contextlib.suppress(NetjailError):
                netns.set_forwarding(netns.Forwarding(*jail.forwarding_before))
        return notes


STRATEGY = Netns()

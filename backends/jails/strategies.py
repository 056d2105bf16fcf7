"""What each jail strategy can do, so the CLI and the TUI offer only what applies."""

from __future__ import annotations

from netjail.backends.model import StrategyInfo

CGROUP = StrategyInfo(
    name="cgroup",
    description="move the process into a netjail cgroup; iptables -m cgroup drops what it sends, "
    "and rules for each socket it already had cover both directions",
    live_process=True,
    launch=False,
    allow_list=True,
    counters=True,
)
OWNER = StrategyInfo(
    name="owner",
    description="every process of a user or group, now and later (iptables -m owner)",
    live_process=True,
    launch=False,
    allow_list=True,
    counters=True,
)
NETNS = StrategyInfo(
    name="netns",
    description="run in a new network namespace: loopback only, or a link (pasta, else veth) "
    "whose traffic is filtered by the allow-list",
    live_process=False,
    launch=True,
    allow_list=True,
    counters=True,
)
GID = StrategyInfo(
    name="gid",
    description="run under a dedicated group whose packets an -m owner --gid-owner rule drops",
    live_process=False,
    launch=True,
    allow_list=True,
    counters=True,
)
SECCOMP = StrategyInfo(
    name="seccomp",
    description="run with socket() refused (EACCES) for network families; no root needed; "
    "netfilter never sees it, so nothing is counted",
    live_process=False,
    launch=True,
    allow_list=False,
    counters=False,
)

STRATEGIES: tuple[StrategyInfo, ...] = (CGROUP, OWNER, NETNS, GID, SECCOMP)
LAUNCH_STRATEGIES = tuple(s.name for s in STRATEGIES if s.launch)


def by_name(name: str) -> StrategyInfo | None:
    return next((s for s in STRATEGIES if s.name == name), None)

"""Pinned data for the snapshot tests ONLY: an engine double with fixed processes, one jail and
counters that rise by a fixed step per read, and a clock that advances one second per call.

Pilot tests that block, unblock or check kernel effects use the real Engine, never this.
"""

from __future__ import annotations

from pathlib import Path
from subprocess import Popen
from typing import Any

from netjail.backends.attempts.store import AttemptRow
from netjail.backends.engine_api import EngineAPI
from netjail.backends.errors import InsufficientPrivilege, NoSuchProcess
from netjail.backends.jails.names import check_jail_name
from netjail.backends.launch import logs
from netjail.backends.model import (
    BlockRequest,
    BlockResult,
    Check,
    Counters,
    HostInfo,
    JailCounters,
    JailInfo,
    LaunchRequest,
    LaunchResult,
    Member,
    OwnerBlockRequest,
    Process,
    ResetResult,
    Snapshot,
    Socket,
    StrategyInfo,
    UnblockRequest,
    UnblockResult,
)

STATE_DIR = Path("/nonexistent")  # never opened: the fake reads and writes nothing
NETNS = 4026532001
SANDBOX_NETNS = 4026532450  # named `netjail-sandbox` by the pinned netns names below
CONTAINER_NETNS = 4026532777  # a namespace without a name
NETNS_NAMES = {SANDBOX_NETNS: "netjail-sandbox"}


def pinned_netns_names() -> dict[int, str]:
    return dict(NETNS_NAMES)


def _sock(
    proto: str,
    local: str,
    lport: int,
    remote: str = "0.0.0.0",
    rport: int = 0,
    state: str = "UNCONN",
    inode: int = 0,
) -> Socket:
    family = "inet6" if ":" in local else "inet"
    return Socket(family, proto, local, lport, remote, rport, state, inode)


def _proc(
    pid: int,
    ppid: int,
    name: str,
    cmdline: tuple[str, ...],
    user: str = "root",
    uid: int = 0,
    sockets: tuple[Socket, ...] = (),
    jail: str | None = None,
    netns: int = NETNS,
    rates: tuple[float, float] | None = None,
) -> Process:
    return Process(
        pid=pid,
        ppid=ppid,
        name=name,
        exe=f"/usr/bin/{name}",
        cmdline=cmdline,
        user=user,
        uid=uid,
        gid=uid,
        start_time=1000 + pid,
        cgroup=f"/system.slice/{name}.service" if not jail else f"/netjail/{jail}",
        netns=netns,
        state="S",
        sockets=sockets,
        jail=jail,
        unit=None if jail else f"{name}.service",
        send_rate=rates[0] if rates else None,
        recv_rate=rates[1] if rates else None,
    )


PROCESSES: tuple[Process, ...] = (
    _proc(1, 0, "systemd", ("/sbin/init",)),
    _proc(
        412,
        1,
        "sshd",
        ("sshd: /usr/sbin/sshd -D",),
        sockets=(
            _sock("tcp", "0.0.0.0", 22, state="LISTEN", inode=11),
            _sock("tcp", "::", 22, "::", 0, "LISTEN", 12),
        ),
    ),
    _proc(
        2201,
        412,
        "sshd",
        ("sshd: alice [priv]",),
        sockets=(_sock("tcp", "10.0.0.5", 22, "10.0.0.77", 51544, "ESTABLISHED", 13),),
        rates=(2_350.0, 180.0),
    ),
    _proc(2240, 2201, "bash", ("-bash",), user="alice", uid=1000),
    _proc(
        2301,
        2240,
        "curl",
        ("curl", "-s", "https://updates.example.net/feed"),
        user="alice",
        uid=1000,
        sockets=(_sock("tcp", "10.0.0.5", 40112, "93.184.216.34", 443, "ESTABLISHED", 14),),
        rates=(1_200.0, 4_830_000.0),
    ),
    _proc(
        2388,
        2240,
        "telemetryd",
        ("/opt/vendor/bin/telemetryd", "--upload"),
        user="alice",
        uid=1000,
        sockets=(
            _sock("udp", "0.0.0.0", 41000, "203.0.113.9", 8125, "ESTABLISHED", 15),
            _sock("tcp", "10.0.0.5", 40120, "203.0.113.9", 443, "SYN-SENT", 16),
        ),
        jail="telemetry",
        rates=(0.0, 0.0),
    ),
    _proc(
        530,
        1,
        "systemd-resolve",
        ("/lib/systemd/systemd-resolved",),
        user="systemd-resolve",
        uid=101,
        sockets=(
            _sock("udp", "127.0.0.53", 53, inode=17),
            _sock("tcp", "127.0.0.53", 53, state="LISTEN", inode=18),
        ),
    ),
    _proc(
        801,
        1,
        "nginx",
        ("nginx: master process /usr/sbin/nginx",),
        user="www-data",
        uid=33,
        sockets=(
            _sock("tcp", "0.0.0.0", 80, state="LISTEN", inode=19),
            _sock("tcp", "0.0.0.0", 443, state="LISTEN", inode=20),
            _sock("tcp", "10.0.0.5", 443, "198.51.100.23", 60211, "ESTABLISHED", 21),
            _sock("tcp", "10.0.0.5", 443, "198.51.100.41", 49830, "ESTABLISHED", 22),
        ),
        rates=(612_000.0, 38_400.0),
    ),
    _proc(
        2950,
        1,
        "node",
        ("node", "/srv/app/server.js"),
        user="app",
        uid=1001,
        sockets=(_sock("tcp", "172.17.0.2", 3000, state="LISTEN", inode=23),),
        netns=CONTAINER_NETNS,
        rates=(0.0, 0.0),
    ),
    _proc(
        3100,
        2240,
        "pip",
        ("pip", "download", "requests"),
        user="alice",
        uid=1000,
        sockets=(_sock("tcp", "10.231.0.2", 41822, "10.0.0.3", 3128, "ESTABLISHED", 24),),
        jail="sandbox",
        netns=SANDBOX_NETNS,
        rates=(0.0, 0.0),
    ),
    _proc(3120, 2240, "fetcher", ("./fetcher", "--all"), user="alice", uid=1000, jail="fetcher-1"),
)

STRATEGIES = (
    StrategyInfo("cgroup", "cgroup2 path match + rules for existing sockets", True, False, True, True),
    StrategyInfo("owner", "every process of a user or group, now and later", True, False, True, True),
    StrategyInfo(
        "netns",
        "run in a new network namespace, or a filtered veth",
        False,
        True,
        True,
        True,
        keep_option=True,
        effect="in a new network namespace",
    ),
    StrategyInfo(
        "gid",
        "run under a group whose packets an owner rule drops",
        False,
        True,
        True,
        True,
        loopback_option=True,
        keep_option=True,
        effect="under a group whose packets are dropped",
    ),
    StrategyInfo(
        "seccomp",
        "run with network sockets refused; nothing counted",
        False,
        True,
        False,
        False,
        effect="with network sockets refused (seccomp)",
    ),
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class FakeEngine:
    """An EngineAPI (checked: `_implements` below, mypy in `make check`), not an Engine: the
    TUI reaches it through nothing else."""

    def __init__(
        self, privileged: bool = True, processes: tuple[Process, ...] = PROCESSES, step: int = 40
    ) -> None:
        self.privileged = privileged
        self.processes = processes
        self.step = step
        self.reads = 0

    def host_info(self) -> HostInfo:
        return HostInfo(
            "web-01",
            "6.18.0-netjail",
            self.privileged,
            "iptables-legacy (python-iptables)",
            "/sys/fs/cgroup/unified",
        )

    def snapshot(self, *, all_processes: bool = True) -> Snapshot:
        procs = self.processes if all_processes else tuple(p for p in self.processes if p.sockets or p.jail)
        return Snapshot(procs, 1_700_000_000.0, NETNS)

    def strategies(self) -> tuple[StrategyInfo, ...]:
        return STRATEGIES

    def doctor(self) -> tuple[Check, ...]:
        raise AssertionError("snapshot tests never run doctor")

    def require_root(self, what: str) -> None:
        if not self.privileged:
            raise InsufficientPrivilege(f"{what} needs root (CAP_NET_ADMIN and write access to cgroup2)")

    def reconcile(self) -> list[str]:
        return []

    def launch_log_path(self, jail: str) -> Path:
        return logs.log_path(STATE_DIR, check_jail_name(jail))

    def check_target(self, pid: int, start_time: int | None = None, force: bool = False) -> Process:
        for p in self.processes:
            if p.pid == pid and start_time in (None, p.start_time):
                return p
        raise NoSuchProcess(f"no process {pid}")

    def _jail(self) -> JailInfo:
        packets = self.step * self.reads
        return JailInfo(
            "telemetry",
            "cgroup",
            ("10.0.0.0/8", "192.168.1.5:53"),
            (Member(2388, 3388, True, "telemetryd"),),
            Counters(packets, packets * 64),
            True,
        )

    def jails(self, *, reconcile: bool = True, counters: object = None) -> tuple[JailInfo, ...]:
        return (
            self._jail(),
            JailInfo("fetcher-1", "seccomp", (), (Member(3120, 4120, True, "fetcher"),), Counters()),
            JailInfo("sandbox", "netns", ("10.0.0.3:3128",), (Member(3100, 4100, True, "pip"),), Counters()),
        )

    def attempts(self, *, jail: str | None = None, limit: int = 200) -> tuple[AttemptRow, ...]:
        """The telemetry jail's log: a name it asked for, a connection, a flood of UDP."""
        at = 1_790_000_000.0
        rows = (
            AttemptRow(
                "telemetry",
                "out",
                "udp",
                "127.0.0.53",
                53,
                "udp",
                "upload.vendor.example",
                3,
                210,
                at,
                at + 2,
                998,
            ),
            AttemptRow(
                "telemetry", "out", "tcp", "203.0.113.7", 443, "syn", None, 12, 720, at + 1, at + 9, 998
            ),
            AttemptRow(
                "telemetry", "out", "udp", "203.0.113.9", 4711, "udp", None, 480, 33600, at, at + 9, 998
            ),
        )
        return tuple(sorted((r for r in rows if jail in (None, r.jail)), key=lambda r: -r.count))[:limit]

    def counters(self) -> tuple[JailCounters, ...]:
        self.reads += 1
        total, zero = self._jail().counters, Counters()
        # like the real engine: a jail without rules reads as zeros (the TUI knows seccomp's)
        return (
            JailCounters("telemetry", total, total, zero),
            JailCounters("fetcher-1", zero, zero, zero),
            JailCounters("sandbox", zero, zero, zero),
        )

    def preview_owner(
        self, user: str | None = None, group: str | None = None, force: bool = False
    ) -> tuple[Process, ...]:
        return tuple(
            p
            for p in self.processes
            if (user is not None and str(p.uid) == user) or (group is not None and str(p.gid) == group)
        )

    def block(self, req: BlockRequest) -> BlockResult:
        raise AssertionError("snapshot tests never block")

    def block_owner(self, req: OwnerBlockRequest, force: bool = False) -> BlockResult:
        raise AssertionError("snapshot tests never block")

    def launch(self, req: LaunchRequest, **stdio: Any) -> tuple[LaunchResult, Popen[bytes]]:
        raise AssertionError("snapshot tests never launch")

    def run(self, req: LaunchRequest) -> LaunchResult:
        raise AssertionError("snapshot tests never launch")

    def relaunch(
        self, pid: int, start_time: int | None, req: LaunchRequest, force: bool = False
    ) -> LaunchResult:
        raise AssertionError("snapshot tests never relaunch")

    def unblock(self, req: UnblockRequest) -> UnblockResult:
        raise AssertionError("snapshot tests never unblock")

    def reset(self) -> ResetResult:
        raise AssertionError("snapshot tests never reset")


def _implements(engine: FakeEngine) -> EngineAPI:
    return engine  # mypy: FakeEngine has every method of EngineAPI, with compatible signatures

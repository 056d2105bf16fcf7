"""Processes and their sockets as the inventory reports them (re-exported by model, which
imports this module on first use: the jail commands never need it)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Socket:
    family: str  # "inet" | "inet6"
    proto: str  # "tcp" | "udp"
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    state: str  # TCP: ESTABLISHED, LISTEN, ...; UDP: "UNCONN" or "ESTABLISHED" (connected)
    inode: int


@dataclass(frozen=True, slots=True)
class UnfilterableSocket:
    """A socket netfilter never sees: an AF_PACKET socket takes and sends whole frames below
    IP, so no jail rule, cgroup match or mark can cut it (tcpdump, DHCP clients, arping)."""

    kind: str  # "packet"
    inode: int
    type: str  # "raw" (frames with their link header) | "dgram" (cooked) | "SOCK_TYPE_n"
    protocol: int  # ethertype it receives: 0x0003 every one (ETH_P_ALL), 0 none yet
    ifindex: int  # 0: every interface
    interface: str  # the interface's name when the socket is in netjail's namespace, else ""


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    ppid: int
    name: str
    exe: str
    cmdline: tuple[str, ...]
    user: str
    uid: int | None
    gid: int | None
    start_time: int  # clock ticks since boot (field 22 of /proc/PID/stat): with pid, the identity
    cgroup: str  # cgroup v2 path ("" when unknown)
    netns: int | None  # inode of /proc/PID/ns/net, None when denied
    state: str
    sockets: tuple[Socket, ...] = ()
    jail: str | None = None
    kernel_thread: bool = False
    unfilterable: tuple[UnfilterableSocket, ...] = ()  # a block cannot cut these: not fully blockable
    unit: str | None = None  # systemd unit, from the cgroup path ("nginx.service"; systemd_units)
    # TCP payload bytes per second since the previous refresh of an Inventory counting traffic
    # (sent: acknowledged by the peer); None: not measured (no TCP socket with counters, the
    # first refresh, or an inventory that does not count). UDP, raw and packet sockets never are.
    send_rate: float | None = None
    recv_rate: float | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start_time)


@dataclass(frozen=True, slots=True)
class Snapshot:
    processes: tuple[Process, ...]
    taken_at: float  # time.time()
    own_netns: int | None
    denied: tuple[str, ...] = field(default=())  # what could not be read, one line each

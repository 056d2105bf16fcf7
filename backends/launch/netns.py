"""Named network namespaces for jails: `netjail-<jail>`, visible to `ip netns list`, loopback up,
and optionally a veth link to the namespace netjail runs in.

Without a link a netns jail has loopback only: nothing leaves it. With one:

    here:  nj-<jail> 10.231.N.1/30, fd00:231:N::1/64  <-veth->  eth0 10.231.N.2/30, fd00:231:N::2/64
    in the netns: default routes via .1 / ::1

plus, here, IP forwarding switched on and a masquerade rule for the netns prefixes (asked of
the firewall backend: Firewall.sync_masquerade). What may pass is not decided here: the engine
filters FORWARD through the Firewall interface with `in_iface=<host_iface>` selectors and the
jail's allow-list.

Forwarding is a per-namespace sysctl: in a test's private netns it is private, but when netjail
runs in the machine's own namespace, `net.ipv4.ip_forward=1` (and the IPv6 `all.forwarding`)
turns the whole host into a router between all its interfaces, filtered only by the FORWARD
chain's policy and rules; and with IPv6 forwarding on, interfaces with accept_ra=1 stop
accepting router advertisements. The previous values are returned (`JailNetns.forwarding_before`)
so the caller can restore them when its last netns jail is gone (`set_forwarding`).

Name prefix: $NETJAIL_NETNS_PREFIX (default "netjail-"), so test sessions sharing /run/netns never
list or reset each other's namespaces.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netjail.backends.errors import (
    BadInput,
    InsufficientPrivilege,
    NetjailError,
    OperationFailed,
    UnsupportedEnvironment,
)
from netjail.backends.jails.names import check_jail_name
from netjail.backends.launch.addr_pool import VethAddresses, block, index_of, pick_free

# their home before netns_names.py: re-exported
from netjail.backends.launch.netns_names import DEFAULT_NETNS_PREFIX as DEFAULT_NETNS_PREFIX
from netjail.backends.launch.netns_names import NETNS_PREFIX_ENV as NETNS_PREFIX_ENV
from netjail.backends.launch.netns_names import NETNS_RUN_DIR as NETNS_RUN_DIR
from netjail.backends.launch.netns_names import list_netjail_netns as list_netjail_netns
from netjail.backends.launch.netns_names import netns_prefix as netns_prefix

if TYPE_CHECKING:
    from netjail.backends.firewall.base import Firewall

HOST_IFACE_PREFIX = "nj-"
NS_IFACE = "eth0"
IFNAMSIZ = 16
POOL_LOCK = Path("/run/netjail-veth.lock")
IFA_F_NODAD = 0x02  # the link is point-to-point and ours: skip duplicate address detection
FORWARD_V4 = Path("/proc/sys/net/ipv4/ip_forward")
FORWARD_V6 = Path("/proc/sys/net/ipv6/conf/all/forwarding")
_SHORT_JAIL = re.compile(rf"[A-Za-z0-9_.-]{{1,{IFNAMSIZ - 1 - len(HOST_IFACE_PREFIX)}}}")


@dataclass(frozen=True, slots=True)
class Forwarding:
    ipv4: bool
    ipv6: bool


@dataclass(frozen=True, slots=True)
class JailNetns:
    jail: str
    name: str  # as in `ip netns list`
    path: str  # /run/netns/<name>, what setns() opens
    host_iface: str | None = None  # the veth end here; None: loopback only
    addresses: VethAddresses | None = None
    forwarding_before: Forwarding | None = None  # sysctls here before create_netns changed them

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The netns side's prefixes (sources of its traffic as it leaves the veth)."""
        return self.addresses.prefixes if self.addresses else ()


def netns_name(jail: str) -> str:
    return netns_prefix() + check_jail_name(jail)


def host_iface(jail: str) -> str:
    """The host end's name, at most 15 characters: "nj-<jail>" when it fits, else a cut jail
    name and a hash, "nj-abcdef~1a2b3" ("~" never appears in a jail name, so no collision)."""
    check_jail_name(jail)
    if _SHORT_JAIL.fullmatch(jail):
        return HOST_IFACE_PREFIX + jail
    import hashlib  # loads OpenSSL (~2.5 ms): only for a netns jail's name, not every `block`

    digest = hashlib.sha1(jail.encode()).hexdigest()[:5]
    return f"{HOST_IFACE_PREFIX}{jail[:6]}~{digest}"


def netns_path(jail: str) -> Path:
    return NETNS_RUN_DIR / netns_name(jail)


def netns_exists(jail: str) -> bool:
    return netns_path(jail).exists()


def netns_pids(jail: str) -> list[int]:
    """Processes whose network namespace is the jail's (those /proc lets us see)."""
    try:
        st = os.stat(netns_path(jail))
    except FileNotFoundError:
        return []
    ident = (st.st_dev, st.st_ino)
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (ns.st_dev, ns.st_ino) == ident:
            pids.append(int(entry.name))
    return sorted(pids)


# ---- forwarding ---------------------------------------------------------------------------------


def forwarding() -> Forwarding:
    """IP forwarding in the namespace netjail runs in."""
    return Forwarding(ipv4=_read_flag(FORWARD_V4), ipv6=_read_flag(FORWARD_V6))


def set_forwarding(state: Forwarding) -> None:
    _write_flag(FORWARD_V4, state.ipv4)
    if FORWARD_V6.exists():
        _write_flag(FORWARD_V6, state.ipv6)


def _read_flag(path: Path) -> bool:
    try:
        return path.read_text().strip() not in ("", "0")
    except FileNotFoundError:
        return False


def _write_flag(path: Path, on: bool) -> None:
    try:
        if _read_flag(path) != on:
            path.write_text("1\n" if on else "0\n")
    except PermissionError:
        raise InsufficientPrivilege(f"cannot write {path}: needs root") from None
    except OSError as exc:
        raise OperationFailed(f"cannot write {path}: {exc.strerror}") from None


# ---- netlink ------------------------------------------------------------------------------------


def _netlink_error(exc: Exception, action: str) -> NetjailError:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    text = os.strerror(code) if isinstance(code, int) and code > 0 else str(exc)
    if code in (errno.EPERM, errno.EACCES):
        return InsufficientPrivilege(f"cannot {action}: permission denied (needs root / CAP_NET_ADMIN)")
    if code == errno.EOPNOTSUPP:
        return UnsupportedEnvironment(f"cannot {action}: not supported by this kernel ({text})")
    return OperationFailed(f"cannot {action}: {text}")


@contextmanager
def _iproute(netns: str | None = None, action: str = "talk to the kernel (rtnetlink)") -> Iterator[Any]:
    """A pyroute2 IPRoute here or inside a named netns (never creating it), errors translated."""
    try:
        from pyroute2 import IPRoute
    except ImportError as exc:
        raise UnsupportedEnvironment(f"pyroute2 is not importable: {exc}") from None
    try:
        ipr = IPRoute() if netns is None else IPRoute(netns=netns, flags=0)
    except Exception as exc:  # NetlinkError, OSError, or pyroute2's child-process errors
        raise _netlink_error(exc, action) from None
    try:
        yield ipr
    except NetjailError:
        raise
    except Exception as exc:
        raise _netlink_error(exc, action) from None
    finally:
        ipr.close()


@contextmanager
def _pool_lock() -> Iterator[None]:
    """Serialise address picking between concurrent netjail processes (pick, then assign)."""
    try:
        fd = os.open(POOL_LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except PermissionError:
        raise InsufficientPrivilege(f"cannot open {POOL_LOCK}: needs root") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _taken_prefixes(ipr: Any) -> list[str]:
    """Every routed prefix and address here: a veth block must overlap none of them."""
    out: list[str] = []
    for r in ipr.route("dump"):
        dst = r.get("dst")
        if dst:
            out.append(f"{dst}/{r['dst_len']}")
    for a in ipr.addr("dump"):
        addr = a.get("address")
        if addr:
            out.append(f"{addr}/{a['prefixlen']}")
    return out


def _index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


# ---- create / remove ----------------------------------------------------------------------------


def create_netns(
    jail: str,
    *,
    veth: bool = False,
    ipv6: bool = True,
    masquerade: bool = True,
    out_iface: str | None = None,
    firewall: Firewall | None = None,
) -> JailNetns:
    """Create the jail's netns with loopback up, and with `veth` a link to here, forwarding on
    and (with `masquerade`) NAT for its prefixes leaving through `out_iface` (None: any), done
    by `firewall` (None: the backend in use).

    Fails with BadInput when the netns already exists. On any failure everything created so far
    is removed again.
    """
    name = netns_name(jail)
    path = NETNS_RUN_DIR / name
    if path.exists():
        raise BadInput(f"network namespace {name} already exists")
    try:
        from pyroute2 import netns as pyroute2_netns
    except ImportError as exc:
        raise UnsupportedEnvironment(f"pyroute2 is not importable: {exc}") from None
    try:
        pyroute2_netns.create(name)
    except Exception as exc:
        raise _netlink_error(exc, f"create network namespace {name}") from None
    before: Forwarding | None = None
    try:
        with _iproute(name, f"bring up loopback in {name}") as ns:
            ns.link("set", index=_index(ns, "lo"), state="up")
        if not veth:
            return JailNetns(jail, name, str(path))
        iface, addrs = _add_link(jail, name, ipv6)
        before = forwarding()
        set_forwarding(Forwarding(ipv4=True, ipv6=ipv6 or before.ipv6))
        if masquerade:
            sources = list(addrs.prefixes if ipv6 else (addrs.prefix4,))
            (firewall or _backend()).sync_masquerade(jail, sources, out_iface)
        return JailNetns(jail, name, str(path), iface, addrs, before)
    except BaseException:
        try:
            remove_netns(jail, firewall=firewall)
            if before is not None:
                set_forwarding(before)
        except NetjailError:
            pass  # the original failure is the one to report
        raise


def _add_link(jail: str, name: str, ipv6: bool) -> tuple[str, VethAddresses]:
    iface = host_iface(jail)
    with _pool_lock(), _iproute(action=f"create veth {iface}") as ipr:
        if _index(ipr, iface) is not None:
            raise OperationFailed(f"interface {iface} already exists (left over? `netjail reset` removes it)")
        addrs = pick_free(_taken_prefixes(ipr))
        ipr.link("add", ifname=iface, kind="veth", peer={"ifname": NS_IFACE, "net_ns_fd": name})
        idx = _index(ipr, iface)
        ipr.addr("add", index=idx, address=addrs.host4, prefixlen=30)
        if ipv6:
            ipr.addr("add", index=idx, address=addrs.host6, prefixlen=64, flags=IFA_F_NODAD)
        ipr.link("set", index=idx, state="up")
    with _iproute(name, f"configure {NS_IFACE} in {name}") as ns:
        idx = _index(ns, NS_IFACE)
        ns.addr("add", index=idx, address=addrs.ns4, prefixlen=30)
        if ipv6:
            ns.addr("add", index=idx, address=addrs.ns6, prefixlen=64, flags=IFA_F_NODAD)
        ns.link("set", index=idx, state="up")
        ns.route("add", gateway=addrs.host4)
        if ipv6:
            ns.route("add", gateway=addrs.host6)
    return iface, addrs


def _backend() -> Firewall:
    from netjail.backends.firewall.registry import select_backend  # loads the rule library

    return select_backend()


def read_netns(jail: str) -> JailNetns | None:
    """What the kernel holds for a jail's netns (None when it has none): its link and addresses
    read back from the host end."""
    name = netns_name(jail)
    path = NETNS_RUN_DIR / name
    if not path.exists():
        return None
    iface = host_iface(jail)
    with _iproute(action=f"read interface {iface}") as ipr:
        idx = _index(ipr, iface)
        if idx is None:
            return JailNetns(jail, name, str(path))
        n: int | None = None
        for a in ipr.addr("dump", index=idx, family=socket.AF_INET):
            net = ipaddress.ip_interface(f"{a.get('address')}/{a['prefixlen']}").network
            n = index_of(str(net))
    return JailNetns(jail, name, str(path), iface, block(n) if n is not None else None)


def remove_netns(jail: str, nat: bool = True, firewall: Firewall | None = None) -> None:
    """Remove the jail's masquerade rules (unless not `nat`: a jail that never had any leaves
    the nat table alone, not even loading it), veth and netns; whatever of them exists.
    Processes still inside keep the namespace alive (without its name) until they exit: check
    `netns_pids` first when that matters."""
    name = netns_name(jail)
    try:
        if nat:
            (firewall or _backend()).remove_masquerade(jail)
    except UnsupportedEnvironment:
        pass  # no nat table (or no iptables at all): no rule of ours can exist
    iface = host_iface(jail)
    with _iproute(action=f"delete interface {iface}") as ipr:
        idx = _index(ipr, iface)
        if idx is not None:
            try:
                ipr.link("del", index=idx)
            except Exception as exc:
                if getattr(exc, "code", None) != errno.ENODEV:  # gone in between: fine
                    raise
    path = NETNS_RUN_DIR / name
    if path.exists():
        from pyroute2 import netns as pyroute2_netns

        try:
            pyroute2_netns.remove(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _netlink_error(exc, f"remove network namespace {name}") from None

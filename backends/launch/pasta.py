"""The user-mode link of a netns jail: pasta (from passt) in the namespace netjail runs in.

pasta owns a tap device inside the jail's netns and re-issues what the jail sends as ordinary
sockets of its own here: the traffic leaves through OUTPUT (never FORWARD), with no NAT rule
and no forwarding sysctl, so nothing host-wide changes and a FORWARD policy of DROP (Docker)
is irrelevant. pasta lives in a cgroup of the jail, `<jail cgroup>/link`, entered BEFORE it
execs (so before it creates any socket): the jail's `-m cgroup --path` selector then sees
every packet it sends for the jail, and its allow-list decides what passes (jail_rules).

Flags, measured with passt 0.0~git20230309 (Debian 12):
- as root pasta switches to nobody and then cannot enter the namespace ("Couldn't switch to
  pasta namespaces"): `--runas 0:0 --netns-only` (it still drops its capabilities and
  installs its own seccomp filter);
- `--config-net` gives the jail a copy of the address and default route of the interface
  here that has a default route (pasta refuses to start without one: "No external routable
  interface"); each family only when it has one here (`-4` / `-6`);
- `--no-map-gw`: the jail's gateway address is not this host's loopback;
  `-t none -u none -T none -U none`: no port is forwarded in either direction;
- no DHCP/RA servers: the addresses are configured directly.
Without `-f` pasta forks once its namespace side is set up and its parent exits 0: returning
from that is the readiness signal. It is found afterwards as the only process of its cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from netjail.backends.errors import NetjailError, OperationFailed, UnsupportedEnvironment
from netjail.backends.jails import cgroups as jail_cgroups
from netjail.backends.jails import sock_create_mark
from netjail.backends.jails.state import JailState
from netjail.backends.system import identity, procio, tools

PASTA = "pasta"
PACKAGE = "passt"
LINK_CGROUP = "link"
START_TIMEOUT = 10.0
# `$1`: the cgroup directory, `$2...`: pasta and its arguments; never interpolated into the script
ENTER_AND_EXEC = 'echo $$ > "$1/cgroup.procs" || exit 125; shift; exec "$@"'
_ROUTE_V4 = Path("/proc/net/route")
_ROUTE_V6 = Path("/proc/net/ipv6_route")


def available() -> bool:
    return tools.find(PASTA) is not None


def cgroup_path(jail: str) -> str:
    """pasta's cgroup, relative to the cgroup2 mount (what `-m cgroup --path` wants)."""
    return f"{jail_cgroups.jail_path(jail)}/{LINK_CGROUP}"


def default_routes() -> tuple[bool, bool]:
    """(IPv4, IPv6): whether this namespace has a default route, as pasta needs."""
    v4 = False
    with contextlib.suppress(OSError):
        for line in _ROUTE_V4.read_text().splitlines()[1:]:
            f = line.split()
            if len(f) > 7 and f[1] == "00000000" and f[7] == "00000000":
                v4 = True
    v6 = False
    with contextlib.suppress(OSError):
        for line in _ROUTE_V6.read_text().splitlines():
            f = line.split()
            if len(f) > 9 and f[0] == "0" * 32 and f[1] == "00" and f[9] != "lo":
                v6 = True
    return v4, v6


def start(jail: str, netns_path: str, mount: Path, ipv6: bool = True) -> tuple[int, int, bool]:
    """Start pasta for the jail's netns inside its link cgroup: (pid, start time, ipv6 on);
    IPv6 only with `ipv6` (not where the firewall cannot filter it). On failure nothing of it
    is left (cgroup removed, process killed)."""
    pasta = tools.require(PASTA, PACKAGE)
    sh = tools.require("sh", "dash")
    v4, v6 = default_routes()
    v6 = v6 and ipv6
    if not v4 and not v6:
        raise UnsupportedEnvironment(
            "pasta (the default link of a netns jail) needs a default route here and this "
            "namespace has none: add one, or use --link veth"
        )
    rel = cgroup_path(jail)
    jail_cgroups.create(mount, rel)  # made by create_cgroup already: the jail's rules name it
    args = [
        pasta,
        "-q",
        "--netns-only",
        "--runas",
        "0:0",
        "--config-net",
        "--no-map-gw",
        *("-t", "none", "-u", "none", "-T", "none", "-U", "none"),
        *("--no-dhcp", "--no-dhcpv6", "--no-ra"),
        *(("-4",) if not v6 else ("-6",) if not v4 else ()),
        "--netns",
        netns_path,
    ]
    try:
        with tempfile.TemporaryFile() as err:
            try:
                rc = subprocess.run(
                    [sh, "-c", ENTER_AND_EXEC, "netjail-link", str(mount / rel.lstrip("/")), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    timeout=START_TIMEOUT,
                    close_fds=True,
                ).returncode
            except subprocess.TimeoutExpired:
                raise OperationFailed(
                    f"pasta did not set up {netns_path} within {START_TIMEOUT:.0f} s"
                ) from None
            err.seek(0)
            text = " ".join(err.read().decode(errors="replace").split())[:300]
        if rc != 0:
            raise OperationFailed(f"pasta failed (exit {rc}): {text or 'no message'}")
        pids = jail_cgroups.procs(mount, rel)
        if len(pids) != 1:
            raise OperationFailed(f"pasta is not running after its start ({len(pids)} processes in {rel})")
        stat = identity.read_stat(pids[0])
        if stat is None:
            raise OperationFailed("pasta exited right after its start")
        return pids[0], stat.start_time, v6
    except BaseException:
        # the cgroup stays: rules still name it, the caller's release removes them, then it
        with contextlib.suppress(NetjailError, OSError):
            stop(jail, mount, 0, 0, remove=False)
        raise


def create_cgroup(jail: str, mount: Path) -> str:
    """pasta's (empty) cgroup, which must exist before a rule can name it."""
    rel = cgroup_path(jail)
    jail_cgroups.create(mount, rel)
    return rel


def mark_sockets(jail: JailState, mount: Path) -> list[str]:
    """Every socket pasta will create in its (still empty) cgroup gets the jail's mark, so the
    incoming mark lane applies the allow-list to what arrives for them (jail_rules). Where the
    program cannot be attached the jail goes without the mark (its rules then filter only what
    pasta sends): a note says what that leaves open."""
    if not jail.mark:
        return []
    from netjail.backends.jails.strategies.netns import netns_state

    why = sock_create_mark.attach(mount, netns_state(jail).pasta_cgroup, jail.mark)
    if why is None:
        return []
    jail.mark = jail.mark_mask = 0
    return [
        f"jail {jail.name!r}: {why}; what arrives for pasta's sockets is not filtered: any "
        "host can send UDP to a port the jail sent from"
    ]


def alive(pid: int, start_time: int) -> bool:
    stat = identity.read_stat(pid) if pid else None
    # a zombie is dead: a killed pasta stays one until whoever inherited it reaps it
    return stat is not None and stat.start_time == start_time and stat.state not in ("Z", "X")


def stop(jail: str, mount: Path | None, pid: int, start_time: int, remove: bool = True) -> None:
    """End the jail's pasta (by pidfd: a recycled PID is never signalled) and anything else in
    its link cgroup, then (`remove`) remove the cgroup and the jail's directory when it is left
    empty: only once the rules naming the cgroup are gone."""
    if pid:
        _kill(pid, start_time)
    if mount is None:
        return
    rel = cgroup_path(jail)
    path = mount / rel.lstrip("/")
    if path.is_dir():
        # the cgroup is root's and only pasta was ever put in it: whatever is there goes
        with contextlib.suppress(OSError):
            (path / "cgroup.kill").write_text("1\n")
        for pid_left in jail_cgroups.procs(mount, rel):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid_left, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while jail_cgroups.procs(mount, rel) and time.monotonic() < deadline:
            time.sleep(0.01)
        if jail_cgroups.procs(mount, rel):
            raise OperationFailed(f"pasta of jail {jail!r} does not exit: {path} still holds it")
    if remove:  # empty now: remove() only has to rmdir it and its empty parents
        jail_cgroups.remove(mount, jail_cgroups.jail_path(jail))


def _kill(pid: int, start_time: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not alive(pid, start_time):  # checked after the pidfd: it holds the process checked
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signal.SIGTERM)
        if not procio.pidfd_exited(fd, 1.0):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            procio.pidfd_exited(fd, 2.0)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise OperationFailed(f"cannot stop pasta (PID {pid}): {exc.strerror}") from None
    finally:
        os.close(fd)


def uplink_ifaces() -> tuple[str, ...]:
    """Interfaces of this namespace other than loopback: where pasta's allowed traffic may
    leave. The kernel routes every packet for one of this host's own addresses through `lo`,
    so a RETURN naming one of these never admits one (under a VRF local delivery goes through
    the VRF's master device instead: docs/firewall.md). /proc/net/dev, not /sys/class/net:
    sysfs shows the namespace it was mounted in, /proc/net the reader's."""
    try:
        lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    except OSError:
        return ()
    names = (line.split(":", 1)[0].strip() for line in lines if ":" in line)
    return tuple(sorted(n for n in names if n and n != "lo"))

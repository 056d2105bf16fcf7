"""`netjail doctor`: can netjail work on this machine, and what else shares its firewall?

Every check is a small function from captured inputs (file text, command output, probe results)
to one `Check`, so the decisions are unit-tested on text from real machines; `run_checks` reads
this machine's inputs and runs the real probes (see doctor_probes) in the caller's network
namespace. A check that crashes becomes a "fail" line: doctor reports, it never dies.
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import subprocess
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path

from netjail.backends.doctor import backend_checks
from netjail.backends.doctor import probes as doctor_probes
from netjail.backends.doctor.parsers import (
    FULL_MARK,
    FwmarkRule,
    MarkedSocket,
    MarkSeen,
    count_save_rules,
    fwmark_marks,
    parse_cap_eff,
    parse_diag_marks,
    parse_iptables_version,
    parse_kernel_config,
    parse_nft_marks,
    parse_nft_ruleset,
    parse_save_marks,
    save_chains,
    save_tables,
    socket_marks_seen,
)
from netjail.backends.errors import BadInput, NetjailError
from netjail.backends.firewall import log_rule, registry
from netjail.backends.firewall.families import LABEL, FamilySupport, coverage_text, usable
from netjail.backends.jails import socket_marks
from netjail.backends.jails.state import Store
from netjail.backends.launch.host_forwarding import ForwardView, describe, dropping, read_view, sysctl_changes
from netjail.backends.model import Check, MarkUse
from netjail.backends.system import sockdiag, systemd_units, tools
from netjail.backends.system.cgroupfs import find_cgroup2, parse_mountinfo, read_cgroup
from netjail.backends.system.procio import socket_inodes

OK, WARN, FAIL = "ok", "warn", "fail"
NO_ROOT = "cannot probe without root"
NO_ROOT_READ = "cannot read the tables without root"

# Capabilities blocking needs: (bit in CapEff, name, what for).
CAP_NET_ADMIN = 12
NEEDED_CAPS = (
    (CAP_NET_ADMIN, "CAP_NET_ADMIN", "firewall rules, SOCK_DESTROY"),
    (21, "CAP_SYS_ADMIN", "cgroups, network namespaces"),
    (19, "CAP_SYS_PTRACE", "sockets of other users' processes"),
    (1, "CAP_DAC_OVERRIDE", "cgroup files of other owners"),
)
FIB_RULE_INVERT = 0x2  # linux/fib_rules.h: `ip rule add not fwmark ...`
MATCH_CONFIG = {"cgroup": "CONFIG_NETFILTER_XT_MATCH_CGROUP", "owner": "CONFIG_NETFILTER_XT_MATCH_OWNER"}
MATCH_OPTION = {"cgroup": "--path", "owner": "--uid-owner"}
MATCH_NEEDED_BY = {"cgroup": "cgroup jails cannot drop anything", "owner": "user/group jails cannot work"}


def _per_table(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name}: {n}" for name, n in sorted(counts.items()))


# ---- checks over captured inputs --------------------------------------------------------------


def root_check(euid: int, status: str) -> Check:
    eff = parse_cap_eff(status)
    if eff is None:
        return Check("root", FAIL, "no CapEff line in /proc/self/status")
    have = [name for bit, name, _ in NEEDED_CAPS if eff >> bit & 1]
    missing = [(name, why) for bit, name, why in NEEDED_CAPS if not eff >> bit & 1]
    if not missing:
        who = "root" if euid == 0 else f"uid {euid}"
        return Check("root", OK, f"{who}, CapEff {eff:016x} has {', '.join(have)}")
    if euid == 0:
        lacks = ", ".join(f"{name} ({why})" for name, why in missing)
        return Check("root", FAIL, f"root but CapEff {eff:016x} lacks {lacks}: blocking will fail")
    lacks = ", ".join(name for name, _ in missing)
    return Check("root", WARN, f"not root (uid {euid}): read-only, blocking needs root ({lacks})")


def cgroup2_check(mountinfo: str) -> Check:
    mount = parse_mountinfo(mountinfo)
    if mount is None:
        return Check(
            "cgroup2",
            FAIL,
            "cgroup2 is not mounted: cgroup jails need it (mount -t cgroup2 none /sys/fs/cgroup/unified)",
        )
    shows = "" if mount.root == "/" else f" (showing {mount.root})"
    return Check("cgroup2", OK, f"{mount.mode} mount at {mount.path}{shows}")


def xt_match_check(
    match: str,
    value: str,
    errors: Mapping[str, str] | None,
    config: Mapping[str, str] | None,
    probed: Iterable[str] = ("IPv4", "IPv6"),
) -> Check:
    """`errors`: the probe's {"IPv4"|"IPv6": reason}, None when it could not run (no root);
    `probed`: the families it tried (those netjail covers here)."""
    name = f"xt_{match}"
    key = MATCH_CONFIG[match]
    if errors is None:
        known = f" ({key}={config[key]} in the kernel config)" if config and key in config else ""
        return Check(name, WARN, NO_ROOT + known)
    rule = f"-m {match} {MATCH_OPTION[match]} {value}"
    if not errors:
        return Check(name, OK, f"a `{rule}` rule loaded ({', '.join(probed)}) in a probe chain, then removed")
    reasons = "; ".join(f"{family}: {reason}" for family, reason in sorted(errors.items()))
    return Check(name, FAIL, f"`{rule}` refused ({reasons}): {MATCH_NEEDED_BY[match]}")


def families_check(found: Iterable[FamilySupport]) -> Check:
    """Which address families netjail filters here: both, one (and whether the other carries
    traffic netjail cannot see), or none."""
    found = tuple(found)
    covered = [LABEL[s.family] for s in found if s.filterable]
    if any(s.filterable is None for s in found):
        return Check("families", WARN, f"{NO_ROOT} ({coverage_text(found)})")
    if len(covered) == len(found):
        return Check("families", OK, f"netjail filters {' and '.join(covered)}")
    if not covered:
        return Check("families", FAIL, f"no filter table opens: {coverage_text(found)}")
    missing = [s for s in found if not s.filterable]
    leaks = [s for s in missing if s.kernel]
    status = WARN if leaks else OK  # a family the kernel lacks carries nothing to filter
    tail = f"; jailed processes can still use {LABEL[leaks[0].family]}" if leaks else ""
    why = "; ".join(s.reason for s in missing)
    return Check("families", status, f"netjail filters {' and '.join(covered)} only: {why}{tail}")


def iptables_check(version_output: str | None, legacy_save_installed: bool) -> Check:
    parsed = parse_iptables_version(version_output or "")
    if parsed is None:
        what = "`iptables` not installed" if version_output is None else "`iptables --version` unclear"
        status = OK if legacy_save_installed else WARN
        return Check("iptables", status, f"{what}; netjail writes xtables-legacy through python-iptables")
    version, variant = parsed
    if not legacy_save_installed:
        return Check(
            "iptables",
            WARN,
            f"`iptables` is v{version} ({variant}) but iptables-legacy-save "
            "is missing: netjail's rules (xtables-legacy) cannot be listed or counted quickly",
        )
    if variant == "legacy":
        return Check(
            "iptables",
            OK,
            f"`iptables` is v{version} (legacy): the tables netjail writes through python-iptables",
        )
    return Check(
        "iptables",
        OK,
        f"`iptables` is v{version} ({variant}) and does not show netjail's "
        "rules: netjail writes xtables-legacy (see iptables-legacy-save)",
    )


def legacy_rules_check(saves: Mapping[str, str] | None, error: str = NO_ROOT_READ) -> Check:
    """`saves`: {"IPv4"|"IPv6": iptables-legacy-save text}, None when unreadable (`error` says why)."""
    if saves is None:
        return Check("legacy-rules", WARN, error)
    foreign: Counter[str] = Counter()
    own = 0
    for family, text in sorted(saves.items()):
        counts, mine = count_save_rules(text)
        own += mine
        foreign.update({f"{family} {table}": n for table, n in counts.items()})
    ours = f"; {own} of netjail's" if own else ""
    if not foreign:
        return Check("legacy-rules", OK, f"no foreign rules in xtables-legacy{ours}")
    total = sum(foreign.values())
    return Check(
        "legacy-rules",
        OK,
        f"{total} foreign rules in xtables-legacy ({_per_table(foreign)}){ours}: "
        "netjail leaves them alone and jumps to its chains first",
    )


def nft_rules_check(rules: Mapping[str, int] | None, error: str = NO_ROOT_READ) -> Check:
    """`rules`: rule count per "family table" in nf_tables, None when unreadable."""
    if rules is None:
        return Check("nft-rules", WARN, error)
    if not rules:
        return Check("nft-rules", OK, "no nf_tables rules")
    return Check(
        "nft-rules",
        OK,
        f"{sum(rules.values())} nf_tables rules ({_per_table(rules)}): they "
        "run at the same hooks as netjail's, and a drop in either one wins",
    )


def marks_check(seen: Sequence[MarkSeen], mask: int | str, unread: Sequence[str] = ()) -> Check:
    """Marks other rules and routing use against the bits netjail owns (`mask`; a str: why
    NETJAIL_MARK_MASK is unusable). A use overlaps when the bits it looks at or changes
    (MarkSeen.bits) meet netjail's: their routing would follow jailed sockets' marks, or their
    rules would rewrite the marks netjail's rules match on. `unread`: sources not readable."""
    if isinstance(mask, str):
        return Check("marks", FAIL, mask)
    uses = tuple(MarkUse(m.value, m.mask, m.kind, m.where, bool(m.bits() & mask)) for m in seen)
    clash = [u for u in uses if u.overlaps]
    missing = f"; not read: {'; '.join(unread)}" if unread else ""
    if clash:
        named = "; ".join(u.where for u in clash[:3]) + (
            f" and {len(clash) - 3} more" if len(clash) > 3 else ""
        )
        return Check(
            "marks",
            FAIL,
            f"{len(clash)} of {len(uses)} marks in use overlap netjail's range {mask:#x} "
            f"(NETJAIL_MARK_MASK): {named}; set NETJAIL_MARK_MASK to bits nobody else uses{missing}",
            uses,
        )
    found = (
        f"{len(uses)} marks in use, none in" if uses else "no marks in use (rules, ip rule, sockets) overlap"
    )
    return Check("marks", WARN if unread else OK, f"{found} netjail's range {mask:#x}{missing}", uses)


def sock_destroy_check(
    config: Mapping[str, str] | None, config_source: str, probed: bool, probe_error: str | None
) -> Check:
    """From the kernel config when readable, else from probe_sock_destroy (`probed` False: no root)."""
    name, key = "sock-destroy", "CONFIG_INET_DIAG_DESTROY"
    without = "netjail cannot kill a blocked process's open connections"
    if config is not None and key in config:
        if config[key] == "y":
            return Check(
                name, OK, f"{key}=y ({config_source}): open connections of a blocked process can be killed"
            )
        return Check(name, WARN, f"{key} is not set ({config_source}): {without}")
    if not probed:
        return Check(name, WARN, f"kernel config unreadable and {NO_ROOT}")
    if probe_error is None:
        return Check(name, OK, "`ss -K` destroyed a loopback connection of our own")
    return Check(name, WARN, f"{probe_error}: {without}")


def pidfd_getfd_check(probed: bool, error: str | None) -> Check:
    """Whether block can mark existing sockets (socket_marks) or falls back to ipsets."""
    name = "pidfd_getfd"
    if not probed:
        return Check(name, WARN, NO_ROOT)
    if error is None:
        return Check(name, OK, "works here: a blocked process's existing sockets get the jail's mark")
    return Check(
        name,
        WARN,
        f"{error}: fallback in use, block matches existing sockets by address through the jail's "
        "ipsets (one set lookup per packet; raw, ICMP and unbound sockets stay uncovered)",
    )


def ipset_check(probed: bool, error: str | None, present: Collection[str]) -> Check:
    """Kernel ipsets, which the fallback for sockets that cannot be marked uses."""
    name = "ipset"
    if not probed:
        return Check(name, WARN, NO_ROOT)
    if error is not None:
        return Check(name, WARN, f"{error}: sockets that cannot be marked cannot be blocked")
    used = f"; netjail's sets now: {', '.join(sorted(present))}" if present else "; netjail holds no set now"
    return Check(
        name,
        OK,
        "hash:ip,port,ip and hash:net,port sets created and removed (fallback for unmarked sockets)" + used,
    )


def attempts_check(enabled: bool, probed: bool, error: str | None) -> Check:
    """The attempts log (docs/attempts.md): whether this namespace's NFLOG group can be read.
    Without it jails block the same; only the log of what they dropped stays empty."""
    name = "attempts"
    if not enabled:
        return Check(name, WARN, "NETJAIL_ATTEMPTS=off: jail chains copy nothing to the attempts log")
    if not probed:
        return Check(name, WARN, NO_ROOT)
    if error is None:
        return Check(name, OK, "NFLOG group bound and released: jails log what they drop (netjail attempts)")
    return Check(name, WARN, f"{error}: jails block, but `netjail attempts` stays empty")


def early_demux_check(tcp: str | None, udp: str | None) -> Check:
    """Early demux attaches the socket to an incoming packet before netfilter's INPUT hook; only
    then can `-m cgroup` in INPUT see whose packet it is (established TCP, connected UDP)."""
    name = "early-demux"
    values = f"tcp_early_demux={tcp}, udp_early_demux={udp}"
    if tcp is None or udp is None:
        return Check(name, WARN, f"net.ipv4 sysctls unreadable ({values})")
    if tcp == "1" and udp == "1":
        return Check(
            name,
            OK,
            f"{values}: INPUT-chain cgroup rules see the socket of established TCP and connected UDP packets",
        )
    off = " and ".join(p for p, v in (("TCP", tcp), ("UDP", udp)) if v != "1")
    return Check(
        name,
        WARN,
        f"{values}: incoming {off} packets reach INPUT before their socket is "
        "known, so INPUT-chain cgroup rules cannot match them (OUTPUT rules still do)",
    )


def pid1_check(comm: str | None, booted: bool = False, delegated: Iterable[str] | None = None) -> Check:
    """PID 1, and whether systemd manages the cgroup tree (`booted`: /run/systemd/system, as
    sd_booted(3) checks); `delegated`: the units systemd delegated their subtree to."""
    if comm is None and not booted:
        return Check("pid1", WARN, "/proc/1/comm unreadable")
    if comm == "systemd" or booted:
        units = sorted(delegated or ())
        shown = ", ".join(units[:5]) + (f" and {len(units) - 5} more" if len(units) > 5 else "")
        return Check(
            "pid1",
            OK,
            "systemd manages the cgroup tree: a unit's processes are jailed inside the unit's own "
            "cgroup, never taken out of it; "
            + (f"delegated units (Delegate=): {shown}" if units else "no unit is delegated (Delegate=)"),
        )
    return Check("pid1", OK, f"{comm}, not systemd: no cgroup manager to share the tree with")


# What gives each firewall manager away: chain names (or prefixes), nf_tables tables, processes.
MANAGERS: tuple[tuple[str, tuple[str, ...], frozenset[str], frozenset[str]], ...] = (
    ("Docker", ("DOCKER",), frozenset(), frozenset({"dockerd"})),
    ("kube-proxy", ("KUBE-",), frozenset({"kube-proxy"}), frozenset({"kube-proxy"})),
    ("firewalld", ("INPUT_ZONES", "IN_public"), frozenset({"firewalld"}), frozenset({"firewalld"})),
    ("ufw", ("ufw-", "ufw6-"), frozenset(), frozenset()),
    ("libvirt", ("LIBVIRT_",), frozenset({"libvirt_network"}), frozenset({"libvirtd"})),
)


def firewalls_check(
    chains: Iterable[str],
    nft_tables: Iterable[str],
    processes: Iterable[str],
    ufw_enabled: bool,
    tables_read: bool = True,
) -> Check:
    """`tables_read` False: chains and nft tables were unreadable (no root), only processes seen."""
    chains, nft_tables, processes = set(chains), set(nft_tables), set(processes)
    found: list[str] = []
    for manager, prefixes, tables, names in MANAGERS:
        signs = []
        if any(c.startswith(prefixes) for c in chains):
            signs.append("chains")
        if tables & nft_tables:
            signs.append("nft table")
        if names & processes:
            signs.append("running")
        if manager == "ufw" and ufw_enabled:
            signs.append("enabled")
        if signs:
            found.append(f"{manager} ({', '.join(signs)})")
    if not found and not tables_read:
        return Check("firewalls", WARN, f"no firewall manager running; {NO_ROOT_READ}")
    if not found:
        return Check(
            "firewalls", OK, "no other firewall manager found (Docker, kube-proxy, firewalld, ufw, libvirt)"
        )
    return Check(
        "firewalls",
        WARN,
        f"{', '.join(found)}: may insert rules above netjail's jumps or flush tables on reload",
    )


def netns_link_check(
    pasta_installed: bool,
    default_routes: tuple[bool, bool],
    view: ForwardView,
    forwarding_changes: list[str],
) -> Check:
    """How a netns jail with an allow-list would reach the world here, and what that changes
    host-wide (host_forwarding.py, docs/firewall.md)."""
    name = "netns-link"
    seen = describe(view) + (f" (unread: {', '.join(view.unread)})" if view.unread else "")
    if pasta_installed and any(default_routes):
        families = "/".join(f for f, on in zip(("IPv4", "IPv6"), default_routes, strict=True) if on)
        return Check(
            name,
            OK,
            f"pasta: netns jails with --allow link in user mode ({families}), with no forwarding, "
            f"NAT or FORWARD rule, whatever the FORWARD policy; {seen}",
        )
    changes = " and ".join(forwarding_changes) or "no sysctl (forwarding is on already)"
    drops = dropping(view)
    veth = f"--link veth turns on {changes} while a netns jail exists" + (
        f", and the FORWARD policy DROP ({', '.join(drops)}) drops its allowed traffic" if drops else ""
    )
    if pasta_installed:
        return Check(name, WARN, f"pasta needs a default route and there is none: {veth}; {seen}")
    return Check(
        name,
        WARN,
        f"pasta not installed (package passt): netns jails with --allow use a veth: {veth}; {seen}",
    )


def _netns_link(can_admin: bool) -> Check:
    from netjail.backends.launch import pasta

    view = read_view() if can_admin else ForwardView({}, False, (NO_ROOT_READ,))
    return netns_link_check(pasta.available(), pasta.default_routes(), view, sysctl_changes())


def python_iptables_check() -> Check:
    try:
        import iptc  # a broken libiptc must fail this check, not the import of doctor
        import iptc.ip4tc
        import iptc.xtables
    except Exception as exc:
        return Check(
            "python-iptables", FAIL, f"cannot load ({exc}): blocking needs libiptc (apt install iptables)"
        )
    libdir = iptc.xtables._xtables_libdir
    missing = [f"libxt_{m}.so" for m in MATCH_CONFIG if not Path(libdir, f"libxt_{m}.so").exists()]
    libs = f"{iptc.ip4tc._libiptc._name}, {iptc.xtables._lib_xtables._name}"
    if missing:
        return Check("python-iptables", FAIL, f"{libs} loaded but {', '.join(missing)} missing in {libdir}")
    return Check("python-iptables", OK, f"{iptc.version.__version__}: {libs}, extensions in {libdir}")


def pyroute2_check() -> Check:
    try:
        import pyroute2

        version = str(getattr(pyroute2, "__version__", "?"))
        from pyroute2 import DiagSocket  # noqa: F401
    except Exception as exc:
        return Check("pyroute2", FAIL, f"cannot import ({exc})")
    return Check("pyroute2", OK, f"{version}: netlink sockets and DiagSocket available")


# ---- this machine's inputs ---------------------------------------------------------------------


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _sysctl(name: str) -> str | None:
    text = _read(Path("/proc/sys", *name.split(".")))
    return None if text is None else text.strip()


def _run(*argv: str) -> subprocess.CompletedProcess[str] | None:
    """Run a tool (None when it is not installed), never for longer than 10 s."""
    path = tools.find(argv[0])
    if path is None:
        return None
    return subprocess.run(
        [path, *argv[1:]], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}
    )


def _first_line(out: subprocess.CompletedProcess[str]) -> str:
    return (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[0]


def read_kernel_config() -> tuple[dict[str, str], str] | None:
    """(config, where from) from /proc/config.gz or /boot/config-<release>, None if unreadable."""
    for path in (Path("/proc/config.gz"), Path("/boot/config-" + os.uname().release)):
        try:
            data = path.read_bytes()
            text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode(errors="replace")
        except OSError:
            continue
        return parse_kernel_config(text), str(path)
    return None


def _process_names() -> set[str]:
    names = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (comm := _read(entry / "comm")) is not None:
            names.add(comm.strip())
    return names


class _Machine:
    """This machine's inputs, each read once and shared by the checks that need it."""

    def pid1(self) -> Check:
        comm = None if (c := _read("/proc/1/comm")) is None else c.strip()
        booted = systemd_units.managed()
        mount = find_cgroup2() if booted else None
        delegated = systemd_units.delegated_units(Path(mount.path)) if mount else None
        return pid1_check(comm, booted, delegated)

    @cached_property
    def cap_eff(self) -> int:
        return parse_cap_eff(_read("/proc/self/status") or "") or 0

    @cached_property
    def can_admin(self) -> bool:
        return bool(self.cap_eff >> CAP_NET_ADMIN & 1)

    @cached_property
    def kernel_config(self) -> tuple[dict[str, str], str] | None:
        return read_kernel_config()

    @cached_property
    def families(self) -> tuple[FamilySupport, ...]:
        from netjail.backends.firewall import families

        return families.support()

    @cached_property
    def covered(self) -> tuple[str, ...]:
        """Families netjail writes here (python-iptables unloadable: both, as before)."""
        try:
            return usable(self.families)
        except Exception:
            return ("inet", "inet6")

    @cached_property
    def legacy_saves(self) -> tuple[dict[str, str] | None, str]:
        if not self.can_admin:
            return None, NO_ROOT_READ
        saves = {}
        for family, tool in (("IPv4", "iptables-legacy-save"), ("IPv6", "ip6tables-legacy-save")):
            if family not in (LABEL[f] for f in self.covered):
                continue  # a table that does not exist here holds nobody's rules
            out = _run(tool)
            if out is None:
                return None, f"{tool} not installed"
            if out.returncode != 0:
                return None, f"{tool}: {_first_line(out)}"
            saves[family] = out.stdout
        return saves, ""

    @cached_property
    def backend(self) -> tuple[registry.BackendInfo | None, str, registry.BackendInfo]:
        """(the backend in use, None when the one asked for is refused; why; the one whose
        checks run: the jails' own when refused)."""
        jails: tuple[str, ...] = ()
        try:
            reg = Store().load()
        except NetjailError as exc:
            reg_backend, unread = "", f" (state unreadable: {exc})"
        else:
            reg_backend, jails, unread = reg.backend, tuple(reg.jails), ""
        try:
            info, why = registry.choose(reg_backend, jails)
        except NetjailError as exc:
            return None, str(exc), registry.BACKENDS.get(reg_backend, registry.IPTABLES)
        return info, why + unread, info

    @cached_property
    def nf_tables(self) -> tuple[bool | None, str]:
        from netjail.backends.firewall import nf_tables_probe

        return nf_tables_probe.probe()

    def backends(self) -> Check:
        installed = registry.installed()
        available = {
            "iptables": backend_checks.iptables_available(
                backend_checks.legacy_in_kernel(),
                backend_checks.import_error("iptc"),
                "iptables" in installed,
            ),
            "nftables": backend_checks.nftables_available(
                self.nf_tables, backend_checks.load_error(backend_checks.LIBNFTABLES), "nftables" in installed
            ),
        }
        info, why, _ = self.backend
        return backend_checks.backends_check(info.name if info else None, why, available)

    def nftables(self) -> Check:
        tables: list[tuple[str, str]] | None = None
        error = NO_ROOT_READ
        if self.can_admin and (out := self.nft_out) is not None:
            if out.returncode == 0:
                tables = backend_checks.nft_tables(out.stdout)
            else:
                error = f"nft: {_first_line(out)}"
        elif self.can_admin:
            error = "nft not installed"
        return backend_checks.nftables_check(
            tools.find("nft"),
            backend_checks.load_error(backend_checks.LIBNFTABLES),
            self.nf_tables,
            tables,
            error,
        )

    @cached_property
    def nft_out(self) -> subprocess.CompletedProcess[str] | None:
        # terse: no set elements. nft names each cgroupsv2 element by walking the cgroup tree
        # (netjail's member maps: 24 s for 500, docs/firewall-nftables.md); rules are what counts
        return _run("nft", "-t", "-j", "list", "ruleset")

    @cached_property
    def nft(self) -> tuple[Counter[str] | None, set[str], set[str], str]:
        """(rules per "family table", tables, chains, why unreadable) of nf_tables."""
        if not self.can_admin:
            return None, set(), set(), NO_ROOT_READ
        out = self.nft_out
        if out is not None:
            if out.returncode != 0:
                return None, set(), set(), f"nft: {_first_line(out)}"
            return *parse_nft_ruleset(out.stdout), ""
        # No nft binary: iptables-nft still shows the tables it manages itself.
        rules: Counter[str] = Counter()
        chains: set[str] = set()
        for family, tool in (("ip", "iptables-nft-save"), ("ip6", "ip6tables-nft-save")):
            out = _run(tool)
            if out is None:
                return None, set(), set(), "neither nft nor iptables-nft-save installed"
            counts, _ = count_save_rules(out.stdout)
            rules.update({f"{family} {table}": n for table, n in counts.items()})
            chains |= save_chains(out.stdout)
        return rules, set(), chains, ""

    def xt_probe(self, match: str) -> tuple[str, dict[str, str] | None]:
        # Our own cgroup and uid: values that surely exist, so only the match itself can fail.
        value = (read_cgroup("self") or "/") if match == "cgroup" else str(os.geteuid())
        return value, doctor_probes.probe_xt_match(match, value, self.covered) if self.can_admin else None

    def sock_destroy(self) -> Check:
        config, source = self.kernel_config or (None, "")
        if config is not None and "CONFIG_INET_DIAG_DESTROY" in config:
            return sock_destroy_check(config, source, probed=False, probe_error=None)
        if not self.can_admin:
            return sock_destroy_check(None, "", probed=False, probe_error=None)
        return sock_destroy_check(None, "", probed=True, probe_error=doctor_probes.probe_sock_destroy())

    def firewalls(self) -> Check:
        saves, _ = self.legacy_saves
        chains = set().union(*(save_chains(text) for text in (saves or {}).values()))
        _, nft_tables, nft_chains, _ = self.nft
        ufw = _read("/etc/ufw/ufw.conf") or ""
        ufw_enabled = bool(re.search(r"^\s*ENABLED\s*=\s*yes\b", ufw, re.MULTILINE | re.IGNORECASE))
        tables_read = saves is not None and self.nft[0] is not None
        return firewalls_check(chains | nft_chains, nft_tables, _process_names(), ufw_enabled, tables_read)

    def marks(self) -> Check:
        try:
            mask: int | str = socket_marks.mark_mask()
        except BadInput as exc:
            mask = str(exc)
        if not self.can_admin:
            return marks_check([], mask, [NO_ROOT_READ])
        seen: list[MarkSeen] = []
        unread: list[str] = []
        saves, why = self.legacy_saves
        if saves is None:
            unread.append(why)
        for family, text in sorted((saves or {}).items()):
            seen += parse_save_marks(text, f"iptables-legacy {family}")
        # iptables-nft rules: nft shows their MARK/CONNMARK options only as opaque xt
        # expressions, iptables-nft-save prints them in full (and those tables are skipped below)
        covered: set[tuple[str, str]] = set()
        for family, label, tool in (
            ("ip", "IPv4", "iptables-nft-save"),
            ("ip6", "IPv6", "ip6tables-nft-save"),
        ):
            out = _run(tool)
            if out is not None and out.returncode == 0:
                seen += parse_save_marks(out.stdout, f"iptables-nft {label}")
                covered |= {(family, table) for table in save_tables(out.stdout)}
        nft = self.nft_out
        if nft is None:
            unread.append("nft not installed")
        elif nft.returncode != 0:
            unread.append(f"nft: {_first_line(nft)}")
        else:
            seen += parse_nft_marks(nft.stdout, covered)
        try:
            seen += fwmark_marks(read_fwmark_rules())
        except Exception as exc:  # no pyroute2, netlink refused: the rest still counts
            unread.append(f"ip rule ({type(exc).__name__}: {exc})")
        try:
            seen += read_socket_marks()
        except Exception as exc:
            unread.append(f"socket marks ({type(exc).__name__}: {exc})")
        return marks_check(seen, mask, unread)


def read_fwmark_rules() -> list[FwmarkRule]:
    """`ip rule` entries with a fwmark selector, IPv4 and IPv6, in this network namespace."""
    from pyroute2 import IPRoute  # loaded only by doctor

    rules = []
    with IPRoute() as ipr:
        for family, label in ((socket.AF_INET, "IPv4"), (socket.AF_INET6, "IPv6")):
            for msg in ipr.get_rules(family=family):
                mark, mask = msg.get_attr("FRA_FWMARK"), msg.get_attr("FRA_FWMASK")
                if mark is None and mask is None:
                    continue
                rules.append(
                    FwmarkRule(
                        label,
                        msg.get_attr("FRA_PRIORITY") or 0,
                        mark or 0,
                        FULL_MARK if mask is None else mask,
                        msg.get_attr("FRA_TABLE") or msg["table"],
                        bool(msg["flags"] & FIB_RULE_INVERT),
                    )
                )
    return rules


def read_socket_marks() -> list[MarkSeen]:
    """TCP and UDP sockets (IPv4, IPv6) of this network namespace with a mark (SO_MARK) that
    is not one of netjail's jails', named with their process. One sock_diag dump per table
    (the kernel reports each socket's mark to a CAP_NET_ADMIN reader); /proc is scanned for
    owners only when such a socket exists. Raw and ICMP sockets are not listed by it."""
    found: list[tuple[str, MarkedSocket]] = []
    with sockdiag.open_socket() as nl:
        for family in (socket.AF_INET, socket.AF_INET6):
            for proto in ("tcp", "udp"):
                nl.send(sockdiag.dump_request(family, proto))
                done = False
                while not done:
                    marked, done = parse_diag_marks(nl.recv(1 << 16))
                    found += [(proto, s) for s in marked]
    try:
        own = {j.mark for j in Store().load().jails.values() if j.mark}
    except NetjailError:
        own = set()
    found = [(proto, s) for proto, s in found if s.mark not in own]
    return socket_marks_seen(found, _owners({s.inode for _, s in found}) if found else {}, own)


def _owners(inodes: set[int]) -> dict[int, str]:
    owners: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            held = set(socket_inodes(f"{entry}/fd")) & inodes
        except OSError:
            continue
        comm = (_read(entry / "comm") or "?").strip()
        for inode in held:
            owners.setdefault(inode, f"PID {entry.name} ({comm})")
    return owners


def _xt_check(machine: _Machine, match: str) -> Check:
    value, errors = machine.xt_probe(match)
    config = (machine.kernel_config or ({}, ""))[0]
    return xt_match_check(match, value, errors, config, [LABEL[f] for f in machine.covered])


def _checks(m: _Machine) -> tuple[tuple[str, Callable[[], Check]], ...]:
    return (
        ("root", lambda: root_check(os.geteuid(), _read("/proc/self/status") or "")),
        ("cgroup2", lambda: cgroup2_check(_read("/proc/self/mountinfo") or "")),
        ("backends", m.backends),
        ("families", lambda: families_check(m.families)),
        ("xt_cgroup", lambda: _xt_check(m, "cgroup")),
        ("xt_owner", lambda: _xt_check(m, "owner")),
        (
            "iptables",
            lambda: iptables_check(
                out.stdout + out.stderr if (out := _run("iptables", "--version")) else None,
                tools.find("iptables-legacy-save") is not None,
            ),
        ),
        ("legacy-rules", lambda: legacy_rules_check(*m.legacy_saves)),
        ("nftables", m.nftables),
        ("nft-rules", lambda: nft_rules_check(m.nft[0], m.nft[3])),
        ("marks", m.marks),
        ("sock-destroy", m.sock_destroy),
        (
            "pidfd_getfd",
            lambda: pidfd_getfd_check(
                m.can_admin, doctor_probes.probe_pidfd_getfd() if m.can_admin else None
            ),
        ),
        (
            "ipset",
            lambda: ipset_check(m.can_admin, *(doctor_probes.probe_ipset() if m.can_admin else (None, ()))),
        ),
        (
            "attempts",
            lambda: attempts_check(
                log_rule.enabled(), m.can_admin, doctor_probes.probe_nflog() if m.can_admin else None
            ),
        ),
        (
            "early-demux",
            lambda: early_demux_check(
                _sysctl("net.ipv4.tcp_early_demux"), _sysctl("net.ipv4.udp_early_demux")
            ),
        ),
        ("pid1", m.pid1),
        ("firewalls", m.firewalls),
        ("netns-link", lambda: _netns_link(m.can_admin)),
        ("python-iptables", python_iptables_check),
        ("pyroute2", pyroute2_check),
    )


def guarded(name: str, check: Callable[[], Check]) -> Check:
    """Run one check; if it crashes, its line says why instead of the whole doctor dying."""
    try:
        return check()
    except Exception as exc:
        return Check(name, FAIL, f"check crashed: {type(exc).__name__}: {exc}")


def for_backend(
    checks: Iterable[tuple[str, Callable[[], Check]]], backend: registry.BackendInfo
) -> tuple[tuple[str, Callable[[], Check]], ...]:
    """The common checks and those `backend` names as its own (registry.BackendInfo), in order:
    a check another registered backend claims is not run for this one."""
    claimed = {c for b in registry.BACKENDS.values() for c in b.doctor_checks}
    return tuple((n, c) for n, c in checks if n not in claimed or n in backend.doctor_checks)


def run_checks() -> tuple[Check, ...]:
    """Every doctor check on this machine for the firewall backend in use, in the caller's
    network namespace."""
    machine = _Machine()
    checks = for_backend(_checks(machine), machine.backend[2])
    return tuple(guarded(name, check) for name, check in checks)

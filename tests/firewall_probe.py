"""Backend-neutral looks at what netjail holds in the kernel, for tests that run in every
backend's pass (tests/run_parallel.py sets NETJAIL_BACKEND per pass).

"Jail X has rules", "what jail X's rules are" and "jail X's counters" go through the Firewall
interface (firewall/base.py) of the backend in use, so a test asks the same question of each.
"Nothing of netjail's is left" cannot trust the backend that may have left it: it reads the
kernel with each backend's own tool, for both backends whichever is in use (a jail written by
the wrong backend is a leftover too):

    iptables   NETJAIL-* / NJ-* chains and rules in iptables-legacy-save, ip6tables-legacy-save
               (every table: filter, nat, mangle)
    nftables   in `table inet netjail` (nft -j list table inet netjail): nj-* chains, named
               counters, sets and maps, and rules whose comment names a jail ("nat:<jail>"); the
               table itself and its empty base chains are not a jail's
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence

from netjail.backends.firewall import registry
from netjail.backends.firewall.base import Firewall, JailRules
from netjail.backends.model import JailCounters

# runs a command where the kernel is read: here, or inside a test host (systemd_host.run)
Run = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]
NFT_TABLE = ("inet", "netjail")
LEGACY_SAVES = ("iptables-legacy-save", "ip6tables-legacy-save")


def local(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True)


def backend() -> str:
    """The backend this session's netjail commands use."""
    return registry.selected().name


def firewall() -> Firewall:
    return registry.select_backend()


def jails() -> set[str]:
    """Jails with rules in the kernel, as the backend in use reads them back."""
    return firewall().jail_names()


def has_rules(jail: str) -> bool:
    return jail in jails()


def rules(jail: str) -> JailRules | None:
    return firewall().read_jail(jail)


def out_selectors(jail: str) -> int:
    """How many outgoing selectors (who is jailed: a cgroup, a socket mark, a 5-tuple) it holds."""
    found = rules(jail)
    return len(found.out_selectors) if found else 0


def counters(jail: str) -> JailCounters:
    """The jail's counters as `netjail counters` reads them (the backend's counters module)."""
    found = registry.read_counters()
    assert jail in found, f"no counters for jail {jail!r} (jails with counters: {sorted(found)})"
    return found[jail]


def dropped(jail: str, family: str | None = None) -> int:
    """Packets the jail dropped: both families, or "inet" / "inet6"."""
    c = counters(jail)
    part = {None: c.total, "inet": c.inet, "inet6": c.inet6}[family]
    return part.dropped_packets


def legacy_left(run: Run = local) -> list[str]:
    lines = []
    for tool in LEGACY_SAVES:
        out = run([tool])
        assert out.returncode == 0, f"{tool}: {out.stderr}"
        lines += [ln for ln in out.stdout.splitlines() if "NETJAIL" in ln or "NJ-" in ln]
    return lines


def nft_objects(run: Run = local) -> list[dict[str, object]] | None:
    """The objects of `table inet netjail` as nft -j lists them (None: no such table)."""
    out = run(["nft", "-j", "list", "table", *NFT_TABLE])
    if out.returncode != 0:
        assert "No such file or directory" in out.stderr, f"nft: {out.stderr}"
        return None
    listed: list[dict[str, object]] = json.loads(out.stdout)["nftables"]
    return [o for o in listed if "metainfo" not in o]


def _jails_part(kind: str, body: dict[str, object]) -> bool:
    if kind == "rule":
        return str(body.get("comment", "")).startswith("nat:")
    return kind != "table" and str(body.get("name", "")).startswith("nj-")


def nft_left(run: Run = local) -> list[str]:
    found = []
    for obj in nft_objects(run) or ():
        for kind, body in obj.items():
            if isinstance(body, dict) and _jails_part(kind, body):
                found.append(f"nft {kind} {body.get('name') or body.get('comment')}")
    return found


def netjail_left(run: Run = local) -> list[str]:
    """Whatever of netjail's jails either backend left in the kernel: [] when nothing."""
    return legacy_left(run) + nft_left(run)


def rule_count(run: Run = local) -> int:
    """Rules of netjail's in the kernel, either backend (what every packet may walk)."""
    legacy = sum(ln.startswith("-A ") for ln in legacy_left(run))
    return legacy + sum("rule" in o for o in nft_objects(run) or ())


def kernel_text(run: Run = local) -> str:
    """Everything of netjail's the kernel shows, for an assertion's message."""
    objects = nft_objects(run)
    nft = "\n".join(json.dumps(o) for o in objects) if objects else "(no table inet netjail)"
    return "\n".join(legacy_left(run)) + "\n" + nft


def _cgroup_paths(node: object) -> list[str]:
    """The paths of every `socket cgroupv2 level N "PATH"` match under an nft JSON rule."""
    if isinstance(node, list):
        return [p for item in node for p in _cgroup_paths(item)]
    if not isinstance(node, dict):
        return []
    match = node.get("match")
    if isinstance(match, dict):
        left, right = match.get("left"), match.get("right")
        sock = left.get("socket") if isinstance(left, dict) else None
        if isinstance(sock, dict) and sock.get("key") == "cgroupv2" and isinstance(right, str):
            return [right]
    return [p for value in node.values() for p in _cgroup_paths(value)]


def cgroup_gates(run: Run = local) -> list[str]:
    """The cgroup paths netjail's outgoing cgroup selectors match, as absolute cgroup2 paths:
    iptables' `-m cgroup --path` gate rules in NETJAIL-OUT, in rule order; nftables' elements of
    its outgoing cgroup maps (`out-cg-<level>`) and cgroup matches of its rules, sorted (nft
    names them relative to /sys/fs/cgroup: on a hybrid host they start with "unified/")."""
    if backend() == "iptables":
        out = run(["iptables-legacy-save"])
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("-A NETJAIL-OUT -m cgroup")]
        return [ln.split("--path ")[1].split()[0].strip('"') for ln in lines]
    paths = []
    for obj in nft_objects(run) or ():
        body = obj.get("map") or obj.get("rule")
        if not isinstance(body, dict):
            continue
        if "map" in obj and str(body.get("name", "")).startswith("out-cg-"):
            paths += [e[0] for e in body.get("elem", ()) if isinstance(e, list) and isinstance(e[0], str)]
        elif "rule" in obj and str(body.get("chain", "")).startswith(("output", "nj-o-")):
            paths += _cgroup_paths(body)
    return sorted("/" + p.removeprefix("unified/").lstrip("/") for p in paths)

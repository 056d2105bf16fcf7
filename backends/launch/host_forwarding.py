"""What forwarding looks like here, for `doctor` and for `run` with a veth link: the FORWARD
chains' policies, whether Docker is present (its DOCKER-USER chain), and the forwarding sysctls
a veth link would switch on.

A veth-linked netns jail depends on all three: its traffic is forwarded, so it needs
`net.ipv4.ip_forward` (and `net.ipv6.conf.all.forwarding`) on in this namespace, which makes
the whole host a router (and IPv6 interfaces with accept_ra=1 ignore router advertisements);
and netjail only RETURNs the jail's allowed traffic, so a FORWARD policy of DROP (what Docker
sets) drops it. The pasta link depends on none of them (docs/firewall.md).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

from netjail.backends.launch.netns import forwarding
from netjail.backends.system import tools

_POLICY = re.compile(r"^:FORWARD (\S+) ", re.MULTILINE)
_CHAIN = re.compile(r"^:(\S+) ", re.MULTILINE)
DOCKER_CHAIN = "DOCKER-USER"


@dataclass(frozen=True, slots=True)
class ForwardView:
    policies: dict[str, str]  # "IPv4 (xtables-legacy)" -> "DROP", ...
    docker: bool  # a DOCKER-USER chain exists in some table read
    unread: tuple[str, ...] = ()  # what could not be read


def parse_legacy_save(text: str) -> tuple[str | None, set[str]]:
    """(FORWARD policy, chain names) of an `iptables-legacy-save -t filter` dump."""
    found = _POLICY.search(text)
    return (found.group(1) if found else None), set(_CHAIN.findall(text))


def parse_nft_chains(text: str) -> tuple[dict[str, str], set[str]]:
    """({"<family> <table>": policy} of base chains hooked at forward, chain names) from
    `nft -j list chains`."""
    try:
        doc = json.loads(text)
    except ValueError:
        return {}, set()
    policies: dict[str, str] = {}
    names: set[str] = set()
    for item in doc.get("nftables", []) if isinstance(doc, dict) else []:
        chain = item.get("chain") if isinstance(item, dict) else None
        if not isinstance(chain, dict):
            continue
        names.add(str(chain.get("name", "")))
        if chain.get("hook") == "forward":
            policies[f"{chain.get('family')} {chain.get('table')}"] = str(
                chain.get("policy", "accept")
            ).upper()
    return policies, names


def read_view() -> ForwardView:
    policies: dict[str, str] = {}
    chains: set[str] = set()
    unread: list[str] = []
    for label, tool in (("IPv4", "iptables-legacy-save"), ("IPv6", "ip6tables-legacy-save")):
        out = _run(tool, "-t", "filter")
        if out is None or out.returncode != 0:
            unread.append(tool)
            continue
        policy, names = parse_legacy_save(out.stdout)
        chains |= names
        if policy:
            policies[f"{label} (xtables-legacy)"] = policy
    out = _run("nft", "-j", "list", "chains")
    if out is not None and out.returncode == 0:
        nft_policies, names = parse_nft_chains(out.stdout)
        chains |= names
        policies.update({f"{k} (nf_tables)": v for k, v in nft_policies.items()})
    return ForwardView(policies, DOCKER_CHAIN in chains, tuple(unread))


def describe(view: ForwardView) -> str:
    shown = ", ".join(f"{k} {v}" for k, v in sorted(view.policies.items())) or "unknown"
    return f"FORWARD policy: {shown}; Docker (DOCKER-USER chain): {'present' if view.docker else 'absent'}"


def dropping(view: ForwardView) -> list[str]:
    return sorted(k for k, v in view.policies.items() if v == "DROP")


def sysctl_changes(ipv6: bool = True) -> list[str]:
    """The forwarding sysctls a veth link would switch on here (those now off)."""
    now = forwarding()
    changes = [] if now.ipv4 else ["net.ipv4.ip_forward"]
    if ipv6 and not now.ipv6:
        changes.append("net.ipv6.conf.all.forwarding")
    return changes


def veth_notes(jail: str, pasta_missing: bool) -> list[str]:
    """What `run` says before it links a jail with a veth: every host-wide change it makes and
    whether this host's FORWARD policy will drop the jail's allowed traffic."""
    why = "pasta is not installed (install passt for a link that changes nothing host-wide)"
    notes = [f"jail {jail!r}: linked by a veth pair" + (f": {why}" if pasta_missing else " (--link veth)")]
    changes = sysctl_changes()
    if changes:
        notes.append(
            f"jail {jail!r}: turning on {' and '.join(changes)} while netns jails exist: this whole "
            "host routes between all its interfaces meanwhile (IPv6: interfaces with accept_ra=1 "
            "ignore router advertisements)"
        )
    view = read_view()
    if drops := dropping(view):
        notes.append(
            f"jail {jail!r}: the FORWARD policy is DROP ({', '.join(drops)}"
            + (", Docker" if view.docker else "")
            + "): netjail only narrows what it forwards, so even the jail's allowed traffic "
            "will be dropped; use --link pasta"
        )
    return notes


def _run(*argv: str) -> subprocess.CompletedProcess[str] | None:
    path = tools.find(argv[0])
    if path is None:
        return None
    try:
        return subprocess.run([path, *argv[1:]], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None

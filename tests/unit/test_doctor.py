"""Doctor decisions on captured inputs: /proc text, tool output, kernel config lines."""

from __future__ import annotations

import json
import socket
import struct
from collections import Counter

from netjail.app.cli_doctor import format_checks
from netjail.backends.doctor import checks as doctor
from netjail.backends.doctor.checks import (
    cgroup2_check,
    early_demux_check,
    firewalls_check,
    guarded,
    iptables_check,
    legacy_rules_check,
    marks_check,
    nft_rules_check,
    pid1_check,
    root_check,
    sock_destroy_check,
    xt_match_check,
)
from netjail.backends.doctor.parsers import (
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
from netjail.backends.model import Check, MarkUse


def status_with(cap_eff: str) -> str:
    return (
        f"Name:\tpython3\nUmask:\t0022\nState:\tR (running)\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\n"
    )


# ---- root and capabilities ----------------------------------------------------------------------


def test_root_with_every_capability_on_this_machine() -> None:
    check = root_check(0, status_with("000001fffeffffff"))  # CAP_SYS_RESOURCE (bit 24) is off here
    assert check.status == "ok"
    assert check.detail == (
        "root, CapEff 000001fffeffffff has CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_OVERRIDE"
    )


def test_root_in_a_default_docker_container_fails() -> None:
    # Docker's default set: no NET_ADMIN, SYS_ADMIN or SYS_PTRACE.
    check = root_check(0, status_with("00000000a80425fb"))
    assert check.status == "fail"
    assert "CAP_NET_ADMIN (firewall rules, SOCK_DESTROY)" in check.detail
    assert "CAP_SYS_ADMIN" in check.detail and "CAP_SYS_PTRACE" in check.detail
    assert "CAP_DAC_OVERRIDE" not in check.detail


def test_unprivileged_user_warns_read_only() -> None:
    check = root_check(65534, status_with("0000000000000000"))
    assert check.status == "warn"
    assert check.detail.startswith("not root (uid 65534): read-only")


def test_non_root_with_file_capabilities_is_ok() -> None:
    # bits 1, 12, 19, 21
    assert (
        root_check(1000, status_with(f"{(1 << 1) | (1 << 12) | (1 << 19) | (1 << 21):016x}")).status == "ok"
    )


def test_cap_eff_parsing() -> None:
    assert parse_cap_eff(status_with("000001fffeffffff")) == 0x1FFFEFFFFFF
    assert parse_cap_eff("Name:\tx\n") is None
    assert root_check(0, "Name:\tx\n").status == "fail"


# ---- cgroup2 ------------------------------------------------------------------------------------


def test_cgroup2_hybrid_pure_and_missing() -> None:
    hybrid = (
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    pure = "30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    assert cgroup2_check(hybrid) == Check("cgroup2", "ok", "hybrid mount at /sys/fs/cgroup/unified")
    assert cgroup2_check(pure) == Check("cgroup2", "ok", "pure mount at /sys/fs/cgroup")
    missing = cgroup2_check("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")
    assert missing.status == "fail" and "not mounted" in missing.detail


# ---- xt matches ---------------------------------------------------------------------------------


def test_xt_match_without_root_cannot_probe() -> None:
    config = parse_kernel_config("CONFIG_NETFILTER_XT_MATCH_CGROUP=y\n")
    check = xt_match_check("cgroup", "/", None, config)
    assert check == Check(
        "xt_cgroup",
        "warn",
        "cannot probe without root (CONFIG_NETFILTER_XT_MATCH_CGROUP=y in the kernel config)",
    )
    assert xt_match_check("owner", "0", None, None).detail == "cannot probe without root"


def test_xt_match_probe_results() -> None:
    assert xt_match_check("owner", "0", {}, None).status == "ok"
    assert "`-m owner --uid-owner 0`" in xt_match_check("owner", "0", {}, None).detail
    refused = xt_match_check("cgroup", "/x", {"IPv6": "can't commit: No such file or directory"}, None)
    assert refused.status == "fail"
    assert refused.detail == (
        "`-m cgroup --path /x` refused (IPv6: can't commit: No such file or directory): "
        "cgroup jails cannot drop anything"
    )


# ---- iptables variant and rules -----------------------------------------------------------------


def test_iptables_version_outputs() -> None:
    assert parse_iptables_version("iptables v1.8.9 (nf_tables)\n") == ("1.8.9", "nf_tables")
    assert parse_iptables_version("iptables v1.8.7 (legacy)\n") == ("1.8.7", "legacy")
    assert parse_iptables_version("iptables v1.6.1\n") == ("1.6.1", "legacy")  # Ubuntu 18.04
    assert parse_iptables_version("bash: iptables: command not found") is None


def test_iptables_check_variants() -> None:
    nft = iptables_check("iptables v1.8.9 (nf_tables)\n", True)
    assert nft.status == "ok" and "v1.8.9 (nf_tables)" in nft.detail and "iptables-legacy-save" in nft.detail
    legacy = iptables_check("iptables v1.8.7 (legacy)\n", True)
    assert legacy.status == "ok" and "(legacy): the tables netjail writes" in legacy.detail
    assert iptables_check("iptables v1.8.9 (nf_tables)\n", False).status == "warn"
    assert iptables_check(None, True).status == "ok"
    assert iptables_check(None, False).status == "warn"


DOCKER_HOST_LEGACY_SAVE = """\
# Generated by iptables-save v1.8.7 on Tue Mar  5 10:00:00 2024
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
# Completed on Tue Mar  5 10:00:00 2024
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-USER - [0:0]
:NETJAIL-OUT - [0:0]
:NJ-O-web - [0:0]
-A OUTPUT -j NETJAIL-OUT
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-USER -j RETURN
-A NETJAIL-OUT -m cgroup --path "/netjail/web" -j NJ-O-web
-A NJ-O-web -j DROP
COMMIT
"""

EMPTY_LEGACY_SAVE = """\
# Generated by iptables-save v1.8.9 on Sat Nov 28 13:04:20 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"""


def test_count_save_rules_separates_netjail_from_foreign() -> None:
    foreign, own = count_save_rules(DOCKER_HOST_LEGACY_SAVE)
    assert foreign == Counter({"nat": 4, "filter": 6})
    assert own == 3  # the jump to NETJAIL-OUT and the two rules in netjail's chains
    counted, _ = count_save_rules("*filter\n[12:840] -A OUTPUT -d 10.0.0.1/32 -j ACCEPT\nCOMMIT\n")
    assert counted == Counter({"filter": 1})  # `iptables-save -c` form


def test_legacy_rules_check() -> None:
    clean = legacy_rules_check({"IPv4": EMPTY_LEGACY_SAVE, "IPv6": ""})
    assert clean == Check("legacy-rules", "ok", "no foreign rules in xtables-legacy")
    busy = legacy_rules_check({"IPv4": DOCKER_HOST_LEGACY_SAVE, "IPv6": EMPTY_LEGACY_SAVE})
    assert busy.status == "ok"
    assert busy.detail.startswith(
        "10 foreign rules in xtables-legacy (IPv4 filter: 6, IPv4 nat: 4); 3 of netjail's"
    )
    unreadable = legacy_rules_check(None, "iptables-legacy-save not installed")
    assert unreadable == Check("legacy-rules", "warn", "iptables-legacy-save not installed")


NFT_EMPTY = (
    '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5",'
    ' "json_schema_version": 1}}]}'
)
# `nft -j list ruleset` after `iptables-nft -N DOCKER; iptables-nft -A OUTPUT -d 10.199.250.1 -j ACCEPT;
# nft add table inet firewalld` in a private netns.
NFT_BUSY = json.dumps(
    {
        "nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "ip", "name": "filter", "handle": 1}},
            {"chain": {"family": "ip", "table": "filter", "name": "DOCKER", "handle": 1}},
            {"chain": {"family": "ip", "table": "filter", "name": "OUTPUT", "handle": 2, "type": "filter",
                       "hook": "output", "prio": 0, "policy": "accept"}},
            {"rule": {"family": "ip", "table": "filter", "chain": "OUTPUT", "handle": 3, "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                           "right": "10.199.250.1"}},
                {"counter": {"packets": 0, "bytes": 0}}, {"accept": None}]}},
            {"table": {"family": "inet", "name": "firewalld", "handle": 2}},
        ]
    }
)  # fmt: skip


def test_nft_ruleset_parsing_and_check() -> None:
    assert parse_nft_ruleset(NFT_EMPTY) == (Counter(), set(), set())
    rules, tables, chains = parse_nft_ruleset(NFT_BUSY)
    assert rules == Counter({"ip filter": 1})
    assert tables == {"filter", "firewalld"}
    assert chains == {"DOCKER", "OUTPUT"}
    assert nft_rules_check(Counter()) == Check("nft-rules", "ok", "no nf_tables rules")
    busy = nft_rules_check(rules)
    assert busy.status == "ok" and busy.detail.startswith("1 nf_tables rules (ip filter: 1)")
    assert nft_rules_check(None) == Check("nft-rules", "warn", "cannot read the tables without root")


# ---- SOCK_DESTROY -------------------------------------------------------------------------------

CONFIG_EXCERPT = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.18.44 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_INET_DIAG=y
CONFIG_INET_DIAG_DESTROY=y
CONFIG_NETFILTER_XT_MATCH_CGROUP=m
# CONFIG_NETFILTER_XT_MATCH_OWNER is not set
"""


def test_kernel_config_parsing() -> None:
    config = parse_kernel_config(CONFIG_EXCERPT)
    assert config["CONFIG_INET_DIAG_DESTROY"] == "y"
    assert config["CONFIG_NETFILTER_XT_MATCH_CGROUP"] == "m"
    assert config["CONFIG_NETFILTER_XT_MATCH_OWNER"] == "n"
    assert config["CONFIG_CC_VERSION_TEXT"] == "gcc (Debian 12.2.0-14) 12.2.0"


def test_sock_destroy_from_config() -> None:
    config = parse_kernel_config(CONFIG_EXCERPT)
    ok = sock_destroy_check(config, "/proc/config.gz", probed=False, probe_error=None)
    assert ok.status == "ok" and ok.detail.startswith("CONFIG_INET_DIAG_DESTROY=y (/proc/config.gz)")
    off = parse_kernel_config("# CONFIG_INET_DIAG_DESTROY is not set\n")
    missing = sock_destroy_check(off, "/boot/config-6.1.0", probed=False, probe_error=None)
    assert missing.status == "warn" and "is not set (/boot/config-6.1.0)" in missing.detail


def test_sock_destroy_from_probe() -> None:
    assert sock_destroy_check(None, "", probed=True, probe_error=None).status == "ok"
    refused = sock_destroy_check(None, "", probed=True, probe_error="`ss -K` did not close a test connection")
    assert refused.status == "warn" and "cannot kill" in refused.detail
    no_root = sock_destroy_check(None, "", probed=False, probe_error=None)
    assert no_root == Check("sock-destroy", "warn", "kernel config unreadable and cannot probe without root")


# ---- early demux, PID 1, other firewall managers -------------------------------------------------


def test_early_demux() -> None:
    on = early_demux_check("1", "1")
    assert on.status == "ok" and on.detail.startswith("tcp_early_demux=1, udp_early_demux=1: INPUT-chain")
    tcp_off = early_demux_check("0", "1")
    assert (
        tcp_off.status == "warn" and "incoming TCP packets reach INPUT before their socket" in tcp_off.detail
    )
    assert "TCP and UDP" in early_demux_check("0", "0").detail
    assert early_demux_check(None, "1").status == "warn"


def test_pid1() -> None:
    assert pid1_check("systemd").status == "ok" and "systemd" in pid1_check("systemd").detail
    assert pid1_check("process_api") == Check(
        "pid1", "ok", "process_api, not systemd: no cgroup manager to share the tree with"
    )
    assert pid1_check(None).status == "warn"


def test_firewall_managers() -> None:
    docker = firewalls_check(save_chains(DOCKER_HOST_LEGACY_SAVE), set(), {"dockerd", "bash"}, False)
    assert docker.status == "warn" and docker.detail.startswith("Docker (chains, running):")
    _, tables, chains = parse_nft_ruleset(NFT_BUSY)
    several = firewalls_check(chains, tables, set(), ufw_enabled=True)
    assert several.detail.startswith("Docker (chains), firewalld (nft table), ufw (enabled):")
    kube = firewalls_check({"KUBE-SERVICES", "KUBE-NODEPORTS"}, set(), {"kube-proxy"}, False)
    assert kube.detail.startswith("kube-proxy (chains, running)")
    none = firewalls_check({"INPUT", "OUTPUT", "NETJAIL-OUT"}, {"filter"}, {"bash", "sshd"}, False)
    assert none.status == "ok"
    blind = firewalls_check(set(), set(), {"bash"}, False, tables_read=False)
    assert blind == Check(
        "firewalls", "warn", "no firewall manager running; cannot read the tables without root"
    )


# ---- libraries ----------------------------------------------------------------------------------


def test_library_checks_on_this_install() -> None:
    iptc_check = doctor.python_iptables_check()
    assert iptc_check.status == "ok", iptc_check.detail
    assert "libip4tc.so" in iptc_check.detail and "libxtables.so" in iptc_check.detail
    assert doctor.pyroute2_check().status == "ok"


# ---- never a traceback, aligned output -----------------------------------------------------------


def test_a_crashing_check_becomes_a_fail_line() -> None:
    def broken() -> Check:
        raise PermissionError(13, "Permission denied", "/proc/config.gz")

    assert guarded("sock-destroy", broken) == Check(
        "sock-destroy",
        "fail",
        "check crashed: PermissionError: [Errno 13] Permission denied: '/proc/config.gz'",
    )


def test_human_output_is_aligned() -> None:
    text = format_checks(
        [
            Check("cgroup2", "ok", "hybrid mount at /sys/fs/cgroup/unified"),
            Check("python-iptables", "fail", "cannot load"),
            Check("root", "warn", "not root"),
        ]
    )
    assert text == (
        "ok    cgroup2          hybrid mount at /sys/fs/cgroup/unified\n"
        "fail  python-iptables  cannot load\n"
        "warn  root             not root\n"
    )


# ---- marks in use -------------------------------------------------------------------------------

# iptables-legacy-save after one `iptables-legacy -t mangle -A ...` per line, in a private netns
# (`--set-mark 0x1`, `--and-mark 0xff`, `--or-mark 0x100`, `--xor-mark 0x100` and a bare
# `CONNMARK --restore-mark` as iptables-save prints them), plus a netjail mark jump of its own.
MARKS_LEGACY_SAVE = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:NETJAIL-OUT - [0:0]
:NJ-O-x - [0:0]
-A NETJAIL-OUT -m mark --mark 0x1000000/0xff000000 -j NJ-O-x
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m socket --restore-skmark -j RETURN
-A PREROUTING -p tcp -j TPROXY --on-port 1 --on-ip 0.0.0.0 --tproxy-mark 0x1/0x1
-A OUTPUT -j MARK --set-xmark 0x2000000/0xff000000
-A OUTPUT -j MARK --set-xmark 0x1/0xffffffff
-A OUTPUT -j MARK --set-xmark 0x0/0xffffff00
-A OUTPUT -j MARK --set-xmark 0x100/0x100
-A OUTPUT -j MARK --set-xmark 0x100/0x0
-A OUTPUT -m mark --mark 0x4000/0x4000 -j RETURN
-A OUTPUT -m mark ! --mark 0x1 -j RETURN
-A OUTPUT -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A OUTPUT -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff
-A OUTPUT -j CONNMARK --set-xmark 0x10/0xf0
-A OUTPUT -m connmark --mark 0x10/0xf0 -j RETURN
-A OUTPUT -m comment --comment "--mark 0xff000000" -j RETURN
COMMIT
"""
# `nft -j list ruleset` after two iptables-nft rules (`-j MARK --set-xmark 0x20/0xff`,
# `-m mark --mark 0x7`) and `nft add rule inet t c meta mark set meta mark and 0x00ffffff or
# 0x04000000`, `meta mark and 0xff000000 == 0x3000000`, `meta mark 0x1`, `meta mark set ct
# mark`, `ct mark and 0xf0 == 0x10`, `meta mark { 0x1, 0x2 }`, and a table named netjail.
MARKS_NFT = (
    '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_vers'
    'ion": 1}}, {"table": {"family": "ip", "name": "mangle", "handle": 1}}, {"chain": {"family": "ip", "t'
    'able": "mangle", "name": "OUTPUT", "handle": 1, "type": "route", "hook": "output", "prio": -150, "po'
    'licy": "accept"}}, {"rule": {"family": "ip", "table": "mangle", "chain": "OUTPUT", "handle": 2, "exp'
    'r": [{"counter": {"packets": 0, "bytes": 0}}, {"xt": {"type": "target", "name": "MARK"}}]}}, {"rule"'
    ': {"family": "ip", "table": "mangle", "chain": "OUTPUT", "handle": 3, "expr": [{"match": {"op": "=="'
    ', "left": {"meta": {"key": "mark"}}, "right": 7}}, {"counter": {"packets": 0, "bytes": 0}}, {"return'
    '": null}]}}, {"table": {"family": "inet", "name": "t", "handle": 2}}, {"chain": {"family": "inet", "'
    'table": "t", "name": "c", "handle": 1, "type": "filter", "hook": "output", "prio": 0, "policy": "acc'
    'ept"}}, {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 2, "expr": [{"mangle": {"k'
    'ey": {"meta": {"key": "mark"}}, "value": {"|": [{"&": [{"meta": {"key": "mark"}}, 83886079]}, 671088'
    '64]}}}]}}, {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 3, "expr": [{"match": {'
    '"op": "==", "left": {"meta": {"key": "mark"}}, "right": {"prefix": {"addr": 50331648, "len": 8}}}}, '
    '{"counter": {"packets": 0, "bytes": 0}}]}}, {"rule": {"family": "inet", "table": "t", "chain": "c", '
    '"handle": 4, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}, {"coun'
    'ter": {"packets": 0, "bytes": 0}}]}}, {"rule": {"family": "inet", "table": "t", "chain": "c", "handl'
    'e": 5, "expr": [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"ct": {"key": "mark"}}}}]}},'
    ' {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 6, "expr": [{"match": {"op": "=="'
    ', "left": {"&": [{"ct": {"key": "mark"}}, 240]}, "right": 16}}, {"accept": null}]}}, {"rule": {"fami'
    'ly": "inet", "table": "t", "chain": "c", "handle": 8, "expr": [{"match": {"op": "==", "left": {"meta'
    '": {"key": "mark"}}, "right": {"set": [1, 2]}}}, {"accept": null}]}}, {"table": {"family": "inet", "'
    'name": "netjail", "handle": 3}}, {"chain": {"family": "inet", "table": "netjail", "name": "o", "hand'
    'le": 1}}, {"rule": {"family": "inet", "table": "netjail", "chain": "o", "handle": 2, "expr": [{"matc'
    'h": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 16777216}}, {"drop": null}]}}]}'
)
MARKS_NFT_SAVE = """\
*mangle
:OUTPUT ACCEPT [0:0]
-A OUTPUT -j MARK --set-xmark 0x20/0xff
-A OUTPUT -m mark --mark 0x7 -j RETURN
COMMIT
"""


def _bits(seen: list[MarkSeen]) -> list[tuple[str, int]]:
    return [(m.where.split(": ", 1)[1], m.bits()) for m in seen]


def test_save_marks_every_form_iptables_save_prints() -> None:
    seen = parse_save_marks(MARKS_LEGACY_SAVE, "iptables-legacy IPv4")
    assert seen[0].where == "iptables-legacy IPv4 mangle PREROUTING rule 1: -m socket --restore-skmark"
    assert _bits(seen) == [
        ("-m socket --restore-skmark", 0xFFFFFFFF),  # the socket's whole mark onto the packet
        ("-j TPROXY --tproxy-mark 0x1/0x1", 0x1),
        ("-j MARK --set-xmark 0x2000000/0xff000000", 0xFF000000),
        ("-j MARK --set-xmark 0x1/0xffffffff", 0xFFFFFFFF),  # --set-mark: every bit
        ("-j MARK --set-xmark 0x0/0xffffff00", 0xFFFFFF00),  # --and-mark 0xff
        ("-j MARK --set-xmark 0x100/0x100", 0x100),  # --or-mark
        ("-j MARK --set-xmark 0x100/0x0", 0x100),  # --xor-mark
        ("-m mark --mark 0x4000/0x4000", 0x4000),
        ("-m mark ! --mark 0x1", 0x1),  # the whole mark compared: only its value's bits matter
        ("-j CONNMARK --restore-mark (0xffffffff)", 0xFFFFFFFF),
        ("-j CONNMARK --save-mark (0xff)", 0xFF),
        ("-j CONNMARK --set-xmark 0x10/0xf0", 0xF0),
        ("-m connmark --mark 0x10/0xf0", 0xF0),
    ]
    # netjail's own jump (NETJAIL-OUT -> NJ-O-x) and a comment quoting "--mark" are not uses
    assert not any("NETJAIL" in m.where or "comment" in m.where for m in seen)
    assert [m.kind for m in seen].count("match") == 3


def test_save_marks_older_mark_options() -> None:
    seen = parse_save_marks(
        "*mangle\n-A OUTPUT -j MARK --set-mark 0x5\n-A OUTPUT -j MARK --and-mark 0xff\n"
        "-A OUTPUT -j MARK --or-mark 0x100\n-A OUTPUT -j CONNMARK --save-mark --mask 0xff00\nCOMMIT\n",
        "x",
    )
    assert [m.bits() for m in seen] == [0xFFFFFFFF, 0xFFFFFF00, 0x100, 0xFF00]


def test_nft_marks_native_expressions() -> None:
    seen = parse_nft_marks(MARKS_NFT, skip={("ip", "mangle")})
    assert _bits(seen) == [
        ("meta mark set bits 0xff000000 (to 0x4000000)", 0xFF000000),
        ("meta mark & 0xff000000 == 0x3000000", 0xFF000000),  # nft's prefix form 0x03000000/8
        ("meta mark == 0x1", 0x1),
        ("meta mark set from an expression (all bits)", 0xFFFFFFFF),  # ct mark onto the packet
        ("ct mark & 0xf0 == 0x10", 0xF0),
        ("meta mark == a set", 0x3),
    ]
    assert seen[0].where.startswith("nft inet t c handle 2: ")
    assert not any("netjail" in m.where for m in seen)  # netjail's own table


def test_nft_marks_of_iptables_nft_come_from_its_save_output() -> None:
    # without iptables-nft-save's text, nft shows only an opaque xt MARK: all bits, said so
    opaque = parse_nft_marks(MARKS_NFT)[:2]
    assert _bits(opaque) == [
        ("iptables-nft -j MARK (its values are hidden from nft)", 0xFFFFFFFF),
        ("meta mark == 0x7", 0x7),
    ]
    assert save_tables(MARKS_NFT_SAVE) == {"mangle"}
    assert _bits(parse_save_marks(MARKS_NFT_SAVE, "iptables-nft IPv4")) == [
        ("-j MARK --set-xmark 0x20/0xff", 0xFF),
        ("-m mark --mark 0x7", 0x7),
    ]


def test_fwmark_rules() -> None:
    rules = [
        FwmarkRule("IPv4", 32765, 0x1000000, 0xFFFFFFFF, 100, False),
        FwmarkRule("IPv6", 50, 0x5, 0xFF, 101, True),
    ]
    seen = fwmark_marks(rules)
    assert [m.where for m in seen] == [
        "ip rule (IPv4) pref 32765: fwmark 0x1000000 lookup 100",
        "ip rule (IPv6) pref 50: not fwmark 0x5/0xff lookup 101",
    ]
    assert [m.bits() for m in seen] == [0x1000000, 0xFF]


def test_marks_check_fails_on_overlap_only() -> None:
    seen = [
        MarkSeen(0x1000000, 0xFFFFFFFF, "match", "ip rule (IPv4) pref 32765: fwmark 0x1000000 lookup 100"),
        MarkSeen(0x4000, 0x4000, "match", "kube"),
        MarkSeen(0xCA6C, 0xFFFFFFFF, "set", "wg-quick: -j MARK --set-xmark 0xca6c/0xffffffff"),
    ]
    check = marks_check(seen, 0xFF000000)
    assert check.status == "fail"
    assert check.detail == (
        "2 of 3 marks in use overlap netjail's range 0xff000000 (NETJAIL_MARK_MASK): ip rule (IPv4) "
        "pref 32765: fwmark 0x1000000 lookup 100; wg-quick: -j MARK --set-xmark 0xca6c/0xffffffff; "
        "set NETJAIL_MARK_MASK to bits nobody else uses"
    )
    assert [m.overlaps for m in check.marks] == [True, False, True]
    assert check.marks[1] == MarkUse(0x4000, 0x4000, "match", "kube", False)
    # a range clear of both comparisons (the setter writes every bit: it overlaps any range)
    clear = marks_check(seen[:2], 0x00FF0000)
    assert (clear.status, clear.detail) == ("ok", "2 marks in use, none in netjail's range 0xff0000")
    assert [m.overlaps for m in clear.marks] == [False, False]
    empty = marks_check([], 0xFF000000)
    assert empty.detail == "no marks in use (rules, ip rule, sockets) overlap netjail's range 0xff000000"


def test_marks_check_unreadable_and_bad_mask() -> None:
    partial = marks_check([], 0xFF000000, ["nft not installed"])
    assert partial.status == "warn" and partial.detail.endswith("; not read: nft not installed")
    bad = marks_check([], "bad NETJAIL_MARK_MASK '0x101': one contiguous run of bits within 32 bits")
    assert bad.status == "fail" and bad.detail.startswith("bad NETJAIL_MARK_MASK")


def test_marks_are_listed_under_their_check() -> None:
    uses = (MarkUse(0x2000000, 0xFF000000, "set", "iptables-legacy IPv4 mangle OUTPUT rule 1", True),)
    text = format_checks([Check("root", "ok", "root"), Check("marks", "fail", "1 of 1 ...", uses)])
    assert text == (
        "ok    root   root\n"
        "fail  marks  1 of 1 ...\n"
        "             overlaps 0x2000000/0xff000000  iptables-legacy IPv4 mangle OUTPUT rule 1\n"
    )


def _diag_record(family: int, inode: int, addr: str, port: int, mark: int | None) -> bytes:
    """One SOCK_DIAG_BY_FAMILY record as the kernel sends it: inet_diag_msg + attributes."""
    src = socket.inet_pton(family, addr).ljust(16, b"\0")
    body = struct.pack("=BBBB", family, 7, 0, 0) + port.to_bytes(2, "big") + b"\0\0" + src
    body += b"\0" * 44 + struct.pack("=I", inode)
    attrs = struct.pack("=HHB3x", 5, 8, 0)  # INET_DIAG_SHUTDOWN, padded
    if mark is not None:
        attrs += struct.pack("=HHI", 8, 15, mark)
    return struct.pack("=IHHII", 16 + len(body) + len(attrs), 20, 2, 1, 0) + body + attrs


def test_socket_marks_from_a_sock_diag_dump() -> None:
    done = struct.pack("=IHHII", 20, 3, 2, 1, 0) + b"\0\0\0\0"
    data = (
        _diag_record(socket.AF_INET, 11, "127.0.0.1", 5353, 0x1234)
        + _diag_record(socket.AF_INET, 12, "127.0.0.1", 5354, 0)  # unmarked: not listed
        + _diag_record(socket.AF_INET6, 13, "::1", 443, 0x4000000)
        + _diag_record(socket.AF_INET, 14, "10.0.0.1", 1, None)  # no CAP_NET_ADMIN: no mark attribute
    )
    marked, finished = parse_diag_marks(data)
    assert not finished
    assert marked == [
        MarkedSocket(socket.AF_INET, 11, "127.0.0.1", 5353, 0x1234),
        MarkedSocket(socket.AF_INET6, 13, "::1", 443, 0x4000000),
    ]
    assert parse_diag_marks(done) == ([], True)
    seen = socket_marks_seen(
        [("udp", marked[0]), ("tcp", marked[1]), ("tcp", MarkedSocket(2, 15, "127.0.0.1", 80, 0x1000000))],
        {11: "PID 7 (wg)"},
        own_marks={0x1000000},  # a jail's: netjail's own
    )
    assert [(m.where, m.bits()) for m in seen] == [
        ("socket:[11] udp 127.0.0.1:5353 of PID 7 (wg)", 0x1234),
        ("socket:[13] tcp [::1]:443", 0x4000000),
    ]


def test_pidfd_getfd_and_ipset_checks_say_which_path_block_takes() -> None:
    from netjail.backends.doctor.checks import ipset_check, pidfd_getfd_check

    assert pidfd_getfd_check(True, None).status == "ok"
    refused = pidfd_getfd_check(True, "pidfd_getfd: Operation not permitted")
    assert refused.status == "warn" and "fallback in use" in refused.detail and "ipsets" in refused.detail
    assert pidfd_getfd_check(False, None).status == "warn"
    assert "nj4-web-f" in ipset_check(True, None, {"nj4-web-f"}).detail
    assert ipset_check(True, "kernel ipset type hash:net,port unavailable", ()).status == "warn"


def test_the_attempts_check_says_why_nothing_would_be_logged() -> None:
    from netjail.backends.doctor.checks import attempts_check

    assert attempts_check(True, True, None).status == "ok"
    assert attempts_check(False, True, None).status == "warn"
    assert attempts_check(True, False, None).status == "warn"  # not root: not probed
    busy = attempts_check(True, True, "NFLOG group 5770 is held by another reader")
    assert busy.status == "warn" and "stays empty" in busy.detail

"""Doctor decisions on captured inputs: /proc text, tool output, kernel config lines."""

from __future__ import annotations

import json
from collections import Counter

from netjail.app.cli_doctor import format_checks
from netjail.backends import doctor
from netjail.backends.doctor import (
    cgroup2_check,
    early_demux_check,
    firewalls_check,
    guarded,
    iptables_check,
    legacy_rules_check,
    nft_rules_check,
    pid1_check,
    root_check,
    sock_destroy_check,
    xt_match_check,
)
from netjail.backends.doctor_parsers import (
    count_save_rules,
    parse_cap_eff,
    parse_iptables_version,
    parse_kernel_config,
    parse_nft_ruleset,
    save_chains,
)
from netjail.backends.model import Check


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


def test_pidfd_getfd_and_ipset_checks_say_which_path_block_takes() -> None:
    from netjail.backends.doctor import ipset_check, pidfd_getfd_check

    assert pidfd_getfd_check(True, None).status == "ok"
    refused = pidfd_getfd_check(True, "pidfd_getfd: Operation not permitted")
    assert refused.status == "warn" and "fallback in use" in refused.detail and "ipsets" in refused.detail
    assert pidfd_getfd_check(False, None).status == "warn"
    assert "nj4-web-f" in ipset_check(True, None, {"nj4-web-f"}).detail
    assert ipset_check(True, "kernel ipset type hash:net,port unavailable", ()).status == "warn"

"""Parsers of /proc text, on text captured from this kernel (Linux 6.18) in a private netns.

The tables below were produced by a listener, an established pair, a half-closed pair, a
TIME_WAIT leftover, IPv6 and v4-mapped connections, and connected/unconnected UDP sockets.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from netjail.backends.model import Socket
from netjail.backends.system.procfs import (
    TCP_STATES,
    decode_addr,
    display_name,
    iter_net_table,
    ns_inode,
    parse_cgroup_v2,
    parse_cmdline,
    parse_net_table,
    parse_sockstat_inuse,
    parse_stat,
    parse_status_ids,
    process_state,
    socket_inode,
)

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 10374 1 0000000010b2c260 100 0 0 10 0
   1: 0100007F:1F90 0100007F:E08C 01 00000000:00000000 00:00000000 00000000     0        0 10376 1 00000000242c37c5 20 0 0 10 -1
   2: 0100007F:1F90 0100007F:E0A2 06 00000000:00000000 03:00001751 00000000     0        0 0 3 0000000012c9947f
   3: 0100007F:C29A 0100007F:2382 01 00000000:00000000 00:00000000 00000000     0        0 10385 2 0000000048a161f3 20 0 0 10 -1
   4: 0100007F:E08C 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 10375 2 00000000525496bd 20 0 0 10 -1
   5: 0100007F:E09A 0100007F:1F90 05 00000000:00000000 03:00001752 00000000     0        0 0 3 00000000707c8889
   6: 0100007F:1F90 0100007F:E09A 08 00000000:00000001 00:00000000 00000000  1000        0 10378 1 000000008ed046c8 20 4 0 10 -1
"""  # noqa: E501

TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 10384 1 00000000a7f4d80f 100 0 0 10 0
   1: 00000000000000000000000001000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 10381 1 00000000e8e16a2a 100 0 0 10 0
   2: 00000000000000000000000001000000:AE78 00000000000000000000000001000000:20FB 01 00000000:00000000 00:00000000 00000000     0        0 10382 2 0000000075d5b362 20 0 0 10 -1
   3: 0000000000000000FFFF00000100007F:2382 0000000000000000FFFF00000100007F:C29A 01 00000000:00000000 00:00000000 00000000     0        0 10386 1 000000006819ee2a 20 0 0 10 -1
"""  # noqa: E501

UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  685: 0100007F:9C40 0100007F:14E9 01 00000000:00000000 00:00000000 00000000     0        0 10388 2 00000000db3dac2f 0
15190: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 10387 2 0000000071e3ebbb 0
"""  # noqa: E501

UDP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  686: 00000000000000000000000001000000:9C41 00000000000000000000000001000000:14EA 01 00000000:00000000 00:00000000 00000000     0        0 10390 2 000000006143bf8d 0
  687: 0000000000000000FFFF00000100007F:9C42 0000000000000000FFFF00000100007F:14E9 01 00000000:00000000 00:00000000 00000000     0        0 10391 2 00000000ce0dbc25 0
15191: 00000000000000000000000000000000:14EA 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 10389 2 0000000034deabe8 0
15192: 990100FD000007000000000001000000:14EB 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 10394 2 00000000f61b7272 0
"""  # noqa: E501


def test_tcp_ipv4_listener_pairs_and_half_closed() -> None:
    socks = parse_net_table(TCP, "inet", "tcp")
    assert socks[0] == Socket("inet", "tcp", "127.0.0.1", 8080, "0.0.0.0", 0, "LISTEN", 10374)
    assert socks[1] == Socket("inet", "tcp", "127.0.0.1", 8080, "127.0.0.1", 57484, "ESTABLISHED", 10376)
    assert socks[4] == Socket("inet", "tcp", "127.0.0.1", 57484, "127.0.0.1", 8080, "ESTABLISHED", 10375)
    assert [s.state for s in socks] == [
        "LISTEN", "ESTABLISHED", "TIME_WAIT", "ESTABLISHED", "ESTABLISHED", "FIN_WAIT2", "CLOSE_WAIT",
    ]  # fmt: skip
    assert socks[2].inode == 0 and socks[5].inode == 0  # nobody holds TIME_WAIT/orphaned sockets


def test_owned_only_drops_inode_zero() -> None:
    socks = parse_net_table(TCP, "inet", "tcp", owned_only=True)
    assert [s.inode for s in socks] == [10374, 10376, 10385, 10375, 10378]


def test_tcp_ipv6_and_v4_mapped() -> None:
    socks = parse_net_table(TCP6, "inet6", "tcp")
    assert socks[0] == Socket("inet6", "tcp", "::", 9090, "::", 0, "LISTEN", 10384)
    assert socks[1] == Socket("inet6", "tcp", "::1", 8443, "::", 0, "LISTEN", 10381)
    assert socks[2] == Socket("inet6", "tcp", "::1", 44664, "::1", 8443, "ESTABLISHED", 10382)
    assert socks[3] == Socket(
        "inet6", "tcp", "::ffff:127.0.0.1", 9090, "::ffff:127.0.0.1", 49818, "ESTABLISHED", 10386
    )


def test_udp_connected_and_unconnected() -> None:
    socks = parse_net_table(UDP, "inet", "udp")
    assert socks == [
        Socket("inet", "udp", "127.0.0.1", 40000, "127.0.0.1", 5353, "ESTABLISHED", 10388),
        Socket("inet", "udp", "0.0.0.0", 5353, "0.0.0.0", 0, "UNCONN", 10387),
    ]
    socks6 = parse_net_table(UDP6, "inet6", "udp")
    assert [(s.local_addr, s.local_port, s.remote_addr, s.remote_port, s.state) for s in socks6] == [
        ("::1", 40001, "::1", 5354, "ESTABLISHED"),
        ("::ffff:127.0.0.1", 40002, "::ffff:127.0.0.1", 5353, "ESTABLISHED"),
        ("::", 5354, "::", 0, "UNCONN"),
        ("fd00:199:7::1", 5355, "::", 0, "UNCONN"),
    ]


@pytest.mark.parametrize(("code", "name"), sorted(TCP_STATES.items()))
def test_every_tcp_state_code(code: int, name: str) -> None:
    line = TCP.splitlines()[2]  # an established socket; only the st column changes
    text = TCP.splitlines()[0] + "\n" + line.replace(" 01 ", f" {code:02X} ", 1) + "\n"
    assert parse_net_table(text, "inet", "tcp")[0].state == name


def test_tcp_state_names_cover_the_kernel_list() -> None:
    assert set(TCP_STATES.values()) >= {
        "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
        "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
    }  # fmt: skip


def test_unknown_state_is_named_not_fatal() -> None:
    text = TCP.splitlines()[0] + "\n" + TCP.splitlines()[2].replace(" 01 ", " 3F ", 1)
    assert parse_net_table(text, "inet", "tcp")[0].state == "UNKNOWN_3F"


def test_cache_reuses_socket_objects_and_keep_holds_only_live_lines() -> None:
    keep: dict[tuple[str, str, str, str], Socket] = {}
    first = list(iter_net_table(TCP, "inet", "tcp", owned_only=True, keep=keep))
    assert len(keep) == 5
    shorter = "\n".join(TCP.splitlines()[:3]) + "\n"  # header, listener, one established
    keep2: dict[tuple[str, str, str, str], Socket] = {}
    again = list(iter_net_table(shorter, "inet", "tcp", owned_only=True, cache=keep, keep=keep2))
    assert again[0] is first[0] and again[1] is first[1]
    assert len(keep2) == 2
    # a socket whose state changed is decoded afresh, not served stale from the cache
    changed = shorter.replace(" 01 ", " 08 ", 1)
    assert list(iter_net_table(changed, "inet", "tcp", cache=keep))[1].state == "CLOSE_WAIT"


def test_decode_addr() -> None:
    assert decode_addr("0100007F") == "127.0.0.1"
    assert decode_addr("0202C70A") == "10.199.2.2"
    assert decode_addr("0000000000000000FFFF00000100007F") == "::ffff:127.0.0.1"
    assert decode_addr("990100FD000002000000000002000000") == "fd00:199:2::2"
    with pytest.raises(ValueError):
        decode_addr("0100")


STAT = (
    "4242 (my (odd) name) S 4100 4242 4100 34816 4242 4194560 120 0 0 0 3 1 0 0 20 0 1 0 "
    "987654 12345678 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
)
KSTAT = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0\n"


def test_parse_stat_with_parentheses_in_comm() -> None:
    s = parse_stat(STAT)
    assert (s.name, s.state, s.ppid, s.start_time) == ("my (odd) name", "S", 4100, 987654)
    assert not s.kernel_thread
    k = parse_stat(KSTAT)
    assert k.kernel_thread and k.start_time == 5 and k.ppid == 0


def test_parse_status_ids_uses_effective_ids() -> None:
    status = "Name:\tx\nUmask:\t0022\nState:\tS\nUid:\t1000\t0\t0\t0\nGid:\t100\t65534\t65534\t65534\n"
    assert parse_status_ids(status) == (0, 65534)
    assert parse_status_ids("Name:\tx\n") == (None, None)


def test_parse_cmdline() -> None:
    assert parse_cmdline(b"python3\0-m\0http.server\0\0") == ("python3", "-m", "http.server", "")
    assert parse_cmdline(b"python3\0-c\0\0") == ("python3", "-c", "")
    assert parse_cmdline(b"nginx: worker process") == ("nginx: worker process",)
    assert parse_cmdline(b"") == ()
    # not UTF-8: kept byte for byte (surrogateescape), so relaunching runs the same argv
    assert parse_cmdline(b"caf\xe9\0") == ("caf\udce9",)
    assert os.fsencode(parse_cmdline(b"caf\xe9\0")[0]) == b"caf\xe9"


def test_parse_cgroup_v2_on_hybrid_and_pure_hosts() -> None:
    hybrid = "12:memory:/user.slice\n1:name=systemd:/user.slice/x.scope\n0::/netjail/j1\n"
    assert parse_cgroup_v2(hybrid) == "/netjail/j1"
    assert parse_cgroup_v2("0::/\n") == "/"
    assert parse_cgroup_v2("4:cpu:/\n") == ""


def test_link_helpers() -> None:
    assert socket_inode("socket:[10374]") == 10374
    assert socket_inode("/dev/null") is None
    assert socket_inode("anon_inode:[eventfd]") is None
    assert ns_inode("net:[4026531833]") == 4026531833


def test_display_name_completes_truncated_comm() -> None:
    assert display_name("systemd-resolve", ("/lib/systemd/systemd-resolved",)) == "systemd-resolved"
    assert display_name("python", ("/usr/bin/python3", "x.py")) == "python"
    assert display_name("kworker/0:1-eve", ()) == "kworker/0:1-eve"
    assert display_name("abcdefghijklmno", ("/bin/other",)) == "abcdefghijklmno"


def test_process_state_words() -> None:
    assert process_state("S") == "sleeping"
    assert process_state("Z") == "zombie"
    assert process_state("?") == "?"


SOCKSTAT = """\
sockets: used 14
TCP: inuse 4 orphan 0 tw 1 alloc 7 mem 290
UDP: inuse 1 mem 0
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 0 memory 0
"""
SOCKSTAT6 = """\
TCP6: inuse 2
UDP6: inuse 0
UDPLITE6: inuse 0
RAW6: inuse 0
FRAG6: inuse 0 memory 0
"""


def test_parse_sockstat_inuse() -> None:
    assert parse_sockstat_inuse(SOCKSTAT) == {"tcp": 4, "udp": 1}
    assert parse_sockstat_inuse(SOCKSTAT6) == {"tcp6": 2, "udp6": 0}
    assert parse_sockstat_inuse("") == {}


def test_netns_inode_names_the_namespace_a_task_is_in() -> None:
    from netjail.backends.system.procio import netns_inode

    own = netns_inode()
    assert own == os.stat("/proc/self/ns/net").st_ino == netns_inode("/proc/thread-self")
    other = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        for _ in range(100):  # until unshare has exec'd sleep in the new namespace
            if netns_inode(f"/proc/{other.pid}") not in (own, None):
                break
            time.sleep(0.02)
        assert netns_inode(f"/proc/{other.pid}") not in (own, None)
    finally:
        other.kill()
        other.wait()
    assert netns_inode(f"/proc/{other.pid}") is None  # gone (reaped): no namespace to name


def test_display_name_completes_a_comm_cut_at_15_bytes_of_wide_characters() -> None:
    wide = "网络名字" * 3  # 36 bytes: the kernel keeps 15 of them, 5 characters
    assert display_name(wide.encode()[:15].decode(), (f"/opt/{wide}", "-x")) == wide
    emoji = "😀😀😀😀x"  # 4 bytes each: the cut falls inside the fourth
    comm = emoji.encode()[:15].decode("utf-8", "surrogateescape")
    assert display_name(comm, (emoji,)) == emoji
    assert display_name("网络名字网", ("网络名字网",)) == "网络名字网"  # not cut at all
    assert display_name(wide.encode()[:15].decode(), ("other",)) == "网络名字网"  # argv[0] elsewhere

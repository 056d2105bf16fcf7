"""libnftables' API (the binding the nftables backend uses) against pyroute2's nftables netlink
support, for what the backend does every tick and every change: reading counters and committing.

    sudo .venv/bin/python bench/nft_library.py [--jails 50] [--runs 31]

Loads --jails realistic jails (nft_jails.py: cgroup and mark verdict maps, CIDR and CIDR:PORT
interval sets, named counters) through the backend, then times, median of --runs after a warm-up,
each library in this process (no new process anywhere):

  counter read
    * libnftables `list counters table inet netjail`: every jail's named counters, JSON decoded
    * libnftables `list table inet netjail`: the whole table, JSON decoded (what a sync lists),
      and its cgroup map alone (nft prints a cgroupv2 element by its path, found from its id)
    * pyroute2 get_rules(): every rule of the inet family (it cannot ask for one table), decoded
      to messages. pyroute2 has no object support, so it cannot read named counters at all: this
      is the only way it could count, from rules' anonymous counters, and netjail's rules have
      none (their counters are named objects, referenced by the rules)
    * pyroute2 get_rules() + get_sets(): what a listing of the table would take
    * NFT_MSG_GETOBJ spoken directly (raw_counters below, ~40 lines): the counter objects of
      netjail's table, filtered by the kernel, checked to equal libnftables' reading
  commit
    * one element added and deleted in one transaction, in a plain `type ipv4_addr` set of a table
      of the bench's own: a libnftables buffer of two commands; pyroute2 set_elems() twice (its
      API commits each call on its own); pyroute2, the two messages hand-built into one batch
    * one CIDR element added and deleted in one of netjail's interval sets (libnftables only:
      pyroute2 cannot write interval elements)
    * a table added and deleted: libnftables one buffer, pyroute2 table() twice

It needs root and must not run in the machine's own network namespace: started there, it
re-executes itself under `unshare -n` with lo up. Everything it makes is removed before it exits.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from nft_jails import bench_cgroups, nft, realistic_jails
from private_netns import ensure_private_netns

TABLE = "inet netjail"
OWN = "njbench-lib"  # the bench's own table (inet), for the element and table commits
NFPROTO_INET = 1  # nfgen_family of an inet table

CANNOT = (
    "named counter objects: pyroute2 0.9.7 has no NFT_MSG_GETOBJ/NEWOBJ (it cannot read or make"
    " netjail's counters; rules' anonymous counters are its only way to count)",
    "interval set elements (CIDRs): set_elems() takes addresses only ('illegal IP address string')",
    "verdict map elements (mark or cgroup -> jump): NFTSetElem has a key but no data",
    "listing one table: get_rules()/get_sets() dump every table of the family",
    "sets('get') (which set_elems() calls without an NFTSet): TypeError in 0.9.7 (a coroutine"
    " indexed); the bench passes the set's type itself",
    "the cgroup and socket-mark dispatch rules themselves: expressions are hand-built netlink"
    " attributes, no nft syntax",
)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


class Pyroute2:
    """pyroute2's synchronous NFTables on the inet family, and a hand-built batch of messages."""

    def __init__(self) -> None:
        from pyroute2.nftables.main import NFTables, NFTSet

        self.nft = NFTables(nfgen_family=NFPROTO_INET)
        # set_elems() looks the set up with sets('get'), broken in 0.9.7: the type is given
        self.plain = NFTSet(table=OWN, name="plain", key_type="ipv4_addr")

    def rules(self) -> list[Any]:
        return list(self.nft.get_rules())

    def listing(self) -> tuple[list[Any], list[Any]]:
        return list(self.nft.get_rules()), list(self.nft.get_sets())

    def element_api(self, value: str) -> None:
        self.nft.set_elems("add", set=self.plain, elements={value})
        self.nft.set_elems("del", set=self.plain, elements={value})

    def _element_msg(self, add: bool, value: str) -> Any:
        from pyroute2.netlink import NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST
        from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES
        from pyroute2.netlink.nfnetlink.nftsocket import (
            DATA_TYPE_NAME_TO_INFO,
            NFT_MSG_DELSETELEM,
            NFT_MSG_NEWSETELEM,
            nft_set_elem_list_msg,
        )
        from pyroute2.nftables.main import NFTSetElem

        modifier = DATA_TYPE_NAME_TO_INFO["ipv4_addr"][2]()
        modifier.header = None
        msg = nft_set_elem_list_msg()
        msg["attrs"] = [
            ["NFTA_SET_ELEM_LIST_TABLE", OWN],
            ["NFTA_SET_ELEM_LIST_SET", "plain"],
            ["NFTA_SET_ELEM_LIST_ELEMENTS", [NFTSetElem(value=value).as_netlink(modifier)]],
        ]
        kind = NFT_MSG_NEWSETELEM if add else NFT_MSG_DELSETELEM
        msg["header"]["type"] = (NFNL_SUBSYS_NFTABLES << 8) | kind
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | ((NLM_F_CREATE | NLM_F_APPEND) if add else 0)
        msg["nfgen_family"] = NFPROTO_INET
        return msg

    def element_batch(self, value: str) -> None:
        """Both messages between one begin and one end (NFNL_MSG_BATCH_BEGIN/END), acks read."""
        from pyroute2.netlink import NLM_F_REQUEST
        from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES, nfgen_msg

        edges = []
        for kind in (0x10, 0x11):  # NFNL_MSG_BATCH_BEGIN, _END
            m = nfgen_msg()
            m["res_id"] = NFNL_SUBSYS_NFTABLES
            m["header"]["type"] = kind
            m["header"]["flags"] = NLM_F_REQUEST
            edges.append(m)
        msgs = [edges[0], self._element_msg(True, value), self._element_msg(False, value), edges[1]]

        async def send() -> list[Any]:
            return [x async for x in self.nft.asyncore.nlm_request_batch(msgs)]

        acks = self.nft._run_with_cleanup(send)
        if any(a.get("error") for a in acks):
            raise SystemExit(f"bench/nft_library.py: pyroute2 batch refused: {acks}")

    def table_api(self) -> None:
        self.nft.table("add", name="njbench-lib-t")
        self.nft.table("del", name="njbench-lib-t")

    def close(self) -> None:
        self.nft.close()


# ---- a third way: NFT_MSG_GETOBJ spoken directly (what neither library offers cheaply) ----------

NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES = 12, 10
NFT_MSG_GETOBJ, NFT_MSG_NEWOBJ, NFT_OBJECT_COUNTER = 19, 18, 1
NFTA_OBJ_TABLE, NFTA_OBJ_NAME, NFTA_OBJ_TYPE, NFTA_OBJ_DATA = 1, 2, 3, 4
NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS = 1, 2
NLM_F_REQUEST, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE = 1, 0x300, 2, 3
_NLMSG = struct.Struct("=IHHII")
_ATTR = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    raw = _ATTR.pack(_ATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _attrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    found = {}
    while off + _ATTR.size <= end:
        alen, kind = _ATTR.unpack_from(data, off)
        if alen < _ATTR.size:
            break
        found[kind & 0x3FFF] = data[off + _ATTR.size : off + alen]
        off += (alen + 3) & ~3
    return found


def raw_counters(table: str = "netjail") -> dict[str, tuple[int, int]]:
    """Every counter object of `table` (inet) from one NFT_MSG_GETOBJ dump, the kernel filtering
    by table and type: name -> (packets, bytes)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        body = struct.pack("=BBH", NFPROTO_INET, 0, 0)
        body += _attr(NFTA_OBJ_TABLE, table.encode() + b"\0")
        body += _attr(NFTA_OBJ_TYPE, struct.pack("!I", NFT_OBJECT_COUNTER))
        kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ
        sock.send(_NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        out: dict[str, tuple[int, int]] = {}
        while True:
            data = sock.recv(65536)
            off = 0
            while off + _NLMSG.size <= len(data):
                length, mtype, _f, _s, _p = _NLMSG.unpack_from(data, off)
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + _NLMSG.size)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                elif mtype & 0xFF == NFT_MSG_NEWOBJ:
                    top = _attrs(data, off + _NLMSG.size + 4, off + length)
                    inner = top.get(NFTA_OBJ_DATA, b"")
                    c = _attrs(inner, 0, len(inner))
                    name = top[NFTA_OBJ_NAME].rstrip(b"\0").decode()
                    (packets,) = struct.unpack("!Q", c[NFTA_COUNTER_PACKETS])
                    (nbytes,) = struct.unpack("!Q", c[NFTA_COUNTER_BYTES])
                    out[name] = (packets, nbytes)
                if length < _NLMSG.size:
                    break
                off += (length + 3) & ~3
    finally:
        sock.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jails", type=int, default=50)
    p.add_argument("--runs", type=int, default=31, help="timed runs per measure (median)")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/nft_library.py: needs root (private network namespace, nft)", file=sys.stderr)
        return 3
    ensure_private_netns([os.path.abspath(__file__), *sys.argv[1:]])
    os.environ.setdefault("NETJAIL_CGROUP_PARENT", f"netjail-bench-{os.getpid()}")
    from netjail.backends.firewall.nft_backend import NftFirewall
    from netjail.backends.firewall.nft_binding import Nft

    fw = NftFirewall()
    fw.reset()
    lib = Nft()
    pr2: Pyroute2 | None = None
    try:
        with bench_cgroups(args.jails) as cgroups:
            fw.sync_jails(realistic_jails(cgroups))
            nft(f"add table inet {OWN}\nadd set inet {OWN} plain {{ type ipv4_addr; }}\n")
            pr2 = Pyroute2()
            ours = [r for r in pr2.rules() if r.get_attr("NFTA_RULE_TABLE") == "netjail"]
            exprs = [e.get_attr("NFTA_EXPR_NAME") for r in ours for e in r.get_attr("NFTA_RULE_EXPRESSIONS")]
            counters = [c for c in lib.list(f"counters table {TABLE}") or [] if "counter" in c]
            print(
                f"libnftables vs pyroute2, {args.jails} realistic jails: {len(ours)} rules in table {TABLE},"
                f" {len(counters)} named counters; in netjail's rules pyroute2 sees"
                f" {exprs.count('counter')} anonymous counters and {exprs.count('objref')} references to"
                f" named ones; median of {args.runs}, load average"
                f" {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
            )
            interval = "nj-real0-o-a4"  # realistic_jail(0)'s IPv4 CIDR allow-list
            rows: list[tuple[str, float, float | None]] = []
            rows.append(
                (
                    "counter read: list counters (lib) / get_rules (pyroute2)",
                    median_ms(lambda: lib.list(f"counters table {TABLE}"), args.runs),
                    median_ms(pr2.rules, args.runs),
                )
            )
            rows.append(
                (
                    "whole table: list table (lib) / get_rules+get_sets",
                    median_ms(lambda: lib.list(f"table {TABLE}"), args.runs),
                    median_ms(pr2.listing, args.runs),
                )
            )
            cg_map = f"out-cg-{len(cgroups[0].strip('/').split('/'))}"  # nft_plan: one map per depth
            rows.append(
                (
                    f"  of which the cgroup map alone ({len(cgroups)} cgroup -> jump elements)",
                    median_ms(lambda: lib.list(f"map {TABLE} {cg_map}"), args.runs),
                    None,
                )
            )
            element = (
                f"add element inet {OWN} plain {{ 10.9.9.9 }}\ndelete element inet {OWN} plain {{ 10.9.9.9 }}"
            )
            commit = lib.run  # one buffer, one kernel transaction (not a program: no argv)
            lib_element = median_ms(lambda: commit(element), args.runs)
            rows.append(
                (
                    "commit: add+delete an element, one transaction",
                    lib_element,
                    median_ms(lambda: pr2.element_batch("10.9.9.9"), args.runs),
                )
            )
            rows.append(
                (
                    "  the same, pyroute2's set_elems() twice (2 commits)",
                    lib_element,
                    median_ms(lambda: pr2.element_api("10.9.9.9"), args.runs),
                )
            )
            cidr = "{ 10.250.0.0/24 }"
            rows.append(
                (
                    "commit: add+delete a CIDR in netjail's interval set",
                    median_ms(
                        lambda: commit(
                            f"add element {TABLE} {interval} {cidr}\ndelete element {TABLE} {interval} {cidr}"
                        ),
                        args.runs,
                    ),
                    None,
                )
            )
            rows.append(
                (
                    "commit: add+delete a table (lib one, pyroute2 two)",
                    median_ms(
                        lambda: commit("add table inet njbench-lib-t\ndelete table inet njbench-lib-t"),
                        args.runs,
                    ),
                    median_ms(pr2.table_api, args.runs),
                )
            )
            print(f"\n  {'measure':<62} {'libnftables':>11} {'pyroute2':>9} {'pyroute2 / lib':>15}")
            for name, a, b in rows:
                tail = f"{b:>9.3f} {b / a:>14.2f}x" if b is not None else f"{'cannot':>9} {'-':>15}"
                print(f"  {name:<62} {a:>8.3f} ms {tail}")
            lib_read = {
                c["counter"]["name"]: (c["counter"]["packets"], c["counter"]["bytes"])
                for c in lib.list(f"counters table {TABLE}") or []
                if "counter" in c
            }
            if raw_counters() != lib_read:
                raise SystemExit("bench/nft_library.py: the GETOBJ dump read other counters than libnftables")
            raw_ms = median_ms(raw_counters, args.runs)
            print(
                f"\n  counter read, NFT_MSG_GETOBJ dump spoken directly (this file's raw_counters, the"
                f" kernel filtering by table and type):\n    {raw_ms:.3f} ms = {raw_ms / rows[0][1]:.3f}x"
                f" libnftables' list counters, the same {len(lib_read)} counters and values"
            )
            print("\n  what pyroute2 0.9.7 cannot do that the backend needs:")
            for line in CANNOT:
                print(f"    - {line}")
    finally:
        if pr2 is not None:
            pr2.close()
        nft(f"delete table inet {OWN}\n") if _exists(OWN) else None
        fw.reset()
    return 0


def _exists(table: str) -> bool:
    import subprocess

    return (
        subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, check=False).returncode
        == 0
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""Pure presentation logic: filter, sort, tree order, rates, formatting."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

from netjail.app.counter_history import CounterHistory
from netjail.app.netns_labels import named_netns, netns_label
from netjail.app.process_columns import COLUMN_KEYS, COLUMNS
from netjail.app.process_view import ViewOptions, build_rows, matches, next_sort
from netjail.backends.model import Counters, JailCounters
from netjail.widgets.format import human_bytes, human_count, listening_ports, remote_endpoints, summarise
from netjail.widgets.process_table import visible_columns

from tests.tui.fakes import CONTAINER_NETNS, NETNS, NETNS_NAMES, PROCESSES, SANDBOX_NETNS


def pids(rows) -> list[int]:  # type: ignore[no-untyped-def]
    return [r.process.pid for r in rows]


def test_networked_only_hides_processes_without_sockets_or_jail() -> None:
    rows = build_rows(PROCESSES, ViewOptions(), {})
    assert pids(rows) == [412, 530, 801, 2201, 2301, 2388, 2950, 3100, 3120]  # 3120: jailed, no socket
    every = build_rows(PROCESSES, ViewOptions(networked_only=False), {})
    assert pids(every) == sorted(p.pid for p in PROCESSES)


def test_numeric_filter_matches_pid_prefix_and_ports_and_puts_exact_pid_first() -> None:
    rows = build_rows(PROCESSES, ViewOptions(query="22", networked_only=False), {})
    assert pids(rows) == [412, 2201, 2240]  # 412 listens on port 22; 2201, 2240 start with 22
    assert pids(build_rows(PROCESSES, ViewOptions(query="22"), {})) == [412, 2201]  # 2240 has no socket
    assert pids(build_rows(PROCESSES, ViewOptions(query="2301", sort="name"), {}))[0] == 2301
    assert pids(build_rows(PROCESSES, ViewOptions(query="801", networked_only=False), {})) == [801]


def test_text_filter_matches_name_user_cmdline_jail_and_address() -> None:
    by = {p.pid: p for p in PROCESSES}
    assert matches(by[2301], "updates.example")
    assert matches(by[2388], "TELEMETRY")
    assert matches(by[801], "198.51.100.41")
    assert matches(by[530], "systemd-res")
    assert not matches(by[801], "curl")


def test_unit_column_shows_and_filters_by_systemd_unit() -> None:
    rows = build_rows(PROCESSES, ViewOptions(query="nginx.serv"), {})
    assert [r.process.pid for r in rows] == [801]
    assert str(rows[0].cells[COLUMN_KEYS.index("unit")]) == "nginx.ser…"
    jailed = next(r for r in build_rows(PROCESSES, ViewOptions(), {}) if r.process.name == "telemetryd")
    assert str(jailed.cells[COLUMN_KEYS.index("unit")]) == ""  # not in a unit: blank


def test_sort_cycle_and_orders() -> None:
    seen = ["pid"]
    while (nxt := next_sort(seen[-1])) != "pid":
        seen.append(nxt)
    assert seen == ["pid", "name", "user", "sockets", "send", "recv", "dropped", "netns"]
    assert pids(build_rows(PROCESSES, ViewOptions(sort="sockets"), {}))[0] == 801
    assert pids(build_rows(PROCESSES, ViewOptions(sort="dropped"), {"telemetry": 5}))[0] == 2388
    names = [r.process.name for r in build_rows(PROCESSES, ViewOptions(sort="name"), {})]
    assert names == sorted(names, key=str.lower)


def test_tree_view_nests_children_and_dims_context_ancestors() -> None:
    rows = build_rows(PROCESSES, ViewOptions(tree=True), {})
    names = [str(r.cells[2]) for r in rows]
    assert names[0] == "systemd"  # context: no socket, shown because descendants have some
    assert names[1:8] == [
        "├─sshd",
        "│ └─sshd",
        "│   └─bash",
        "│     ├─curl",
        "│     ├─telemetryd",
        "│     ├─pip",
        "│     └─fetcher",
    ]
    assert names[-2:] == ["├─nginx", "└─node"]
    context = {r.process.pid for r in rows if getattr(r.cells[0], "style", "") == "dim"}
    assert context == {1, 2240}  # the others are dimmed for their namespace, not as context


def test_jailed_rows_show_jail_and_dropped_count() -> None:
    row = next(r for r in build_rows(PROCESSES, ViewOptions(), {"telemetry": 12345}) if r.process.pid == 2388)
    keys = list(COLUMN_KEYS)
    assert str(row.cells[keys.index("jail")]) == "telemetry"
    assert str(row.cells[keys.index("dropped")]) == "12k"
    plain = next(r for r in build_rows(PROCESSES, ViewOptions(), {}) if r.process.pid == 801)
    assert str(plain.cells[keys.index("remote")]) == "198.51.100.23:60211 +1"
    assert str(plain.cells[keys.index("listen")]) == "80 443"


def test_a_reused_pid_is_another_row() -> None:
    p = PROCESSES[1]
    a = build_rows((p,), ViewOptions(), {})[0]
    b = build_rows((replace(p, start_time=p.start_time + 1),), ViewOptions(), {})[0]
    assert a.key != b.key


def _jc(packets: int) -> JailCounters:
    total = Counters(packets, packets * 64)
    return JailCounters("j", total, total, Counters())


def test_rates_use_real_elapsed_time_and_survive_counter_resets() -> None:
    h = CounterHistory(interval=0.5)
    h.record([_jc(0)], at=10.0)
    assert h.rate("j") is None
    h.record([_jc(100)], at=12.0)
    assert h.rate("j") == 50.0
    h.record([_jc(20)], at=13.0)  # jail rebuilt: counters restarted
    assert h.rate("j") == 0.0
    h.record([_jc(60)], at=14.0)
    assert h.rate("j") == 40.0
    window = h.rates("j")
    assert len(window) == h.capacity and window[-3:] == (50.0, 0.0, 40.0) and window[0] == 0.0
    h.record([], at=15.0)
    assert h.rate("j") is None


def test_formatting() -> None:
    assert [human_count(n) for n in (0, 999, 1234, 12345, 4_100_000)] == ["0", "999", "1.2k", "12k", "4.1M"]
    assert human_bytes(512) == "512 B" and human_bytes(23040) == "22.5 KiB"
    assert human_bytes(5 * 2**40) == "5.0 TiB"


def test_the_cli_counts_bytes_like_the_dashboard() -> None:
    from netjail.app.cli_jails import _pb

    assert _pb(3, 5 * 2**40) == f"3 pkts / {human_bytes(5 * 2**40)}" == "3 pkts / 5.0 TiB"
    assert _pb(1, 23040) == "1 pkts / 22.5 KiB"
    assert summarise(["a" * 10, "b" * 10, "c" * 10], 24) == f"{'a' * 10} {'b' * 10} +1"
    by = {p.pid: p for p in PROCESSES}
    assert listening_ports(by[530].sockets) == ["53", "u53"]
    assert remote_endpoints(by[412].sockets) == []


def test_processes_in_another_network_namespace_are_dimmed() -> None:
    elsewhere = replace(PROCESSES[7], netns=NETNS + 1)  # nginx
    rows = build_rows((*PROCESSES[:7], elsewhere), ViewOptions(), {}, own_netns=NETNS)
    dim = {r.process.pid for r in rows if getattr(r.cells[0], "style", "") == "dim"}
    assert dim == {801}
    here = [p for p in PROCESSES if p.netns == NETNS]
    assert not any(getattr(r.cells[0], "style", "") for r in build_rows(here, ViewOptions(), {}, NETNS))


def test_netns_column_names_ip_netns_namespaces_and_shows_others_by_inode() -> None:
    rows = build_rows(PROCESSES, ViewOptions(), {}, NETNS, NETNS_NAMES)
    labels = {r.process.pid: str(r.cells[COLUMN_KEYS.index("netns")]) for r in rows}
    assert labels[3100] == "netjail-sandbox"
    assert labels[2950] == f"net:[{CONTAINER_NETNS}]"
    assert {pid for pid, label in labels.items() if label} == {2950, 3100}  # netjail's own: blank
    assert netns_label(None, NETNS, NETNS_NAMES) == ""  # unreadable: no claim either way
    assert netns_label(CONTAINER_NETNS, None, NETNS_NAMES) == ""  # own namespace unknown
    assert netns_label(SANDBOX_NETNS, None, NETNS_NAMES) == "netjail-sandbox"
    # long names keep their end (the jail's name), cut from the left to the column's width
    long = replace(PROCESSES[-2], netns=SANDBOX_NETNS + 1)
    names = {SANDBOX_NETNS + 1: "test123456-netjail-python3-12"}
    (row,) = build_rows((long,), ViewOptions(), {}, NETNS, names)
    cell = str(row.cells[COLUMN_KEYS.index("netns")])
    assert cell == "…jail-python3-12" and len(cell) == next(c.width for c in COLUMNS if c.key == "netns")


def test_sort_by_netns_groups_namespaces_own_first() -> None:
    rows = build_rows(PROCESSES, ViewOptions(sort="netns"), {}, NETNS, NETNS_NAMES)
    assert pids(rows)[-2:] == [2950, 3100]  # after every process of netjail's own namespace
    labels = [str(r.cells[COLUMN_KEYS.index("netns")]) for r in rows]
    assert labels == sorted(labels)


def test_named_netns_maps_the_inode_of_each_name(tmp_path: Path) -> None:
    for name in ("alpha", "beta"):
        (tmp_path / name).write_text("")
    found = named_netns(tmp_path)
    assert found == {(tmp_path / n).stat().st_ino: n for n in ("alpha", "beta")}
    assert named_netns(tmp_path / "missing") == {}


def test_uncountable_jails_show_n_a_and_sort_after_counted_ones() -> None:
    dropped: dict[str, int | None] = {"telemetry": 7, "fetcher-1": None, "sandbox": 0}
    rows = build_rows(PROCESSES, ViewOptions(sort="dropped"), dropped)
    cells = {r.process.pid: str(r.cells[COLUMN_KEYS.index("dropped")]) for r in rows}
    assert (cells[2388], cells[3100], cells[3120], cells[801]) == ("7", "0", "n/a", "")
    assert pids(rows)[:2] == [2388, 3100]


def test_rate_columns_show_tcp_bytes_a_second_and_sort_the_busiest_first() -> None:
    rows = build_rows(PROCESSES, ViewOptions(sort="recv"), {})
    assert pids(rows)[:3] == [2301, 801, 2201]  # 4.8M, 38k, 180 received a second
    cells = {r.process.pid: r.cells[COLUMN_KEYS.index("send")] for r in rows}
    assert (str(cells[801]), str(cells[2388]), str(cells[530])) == ("612k", "0", "")  # "": not counted
    sends = pids(build_rows(PROCESSES, ViewOptions(sort="send"), {}))
    assert sends[:3] == [801, 2201, 2301]
    uncounted = {p.pid for p in PROCESSES if p.send_rate is None}
    assert set(sends[-len(uncounted & set(sends)) :]) == uncounted & set(sends)  # after every 0


def test_columns_drop_out_by_priority_as_the_table_narrows() -> None:
    def shown(width: int) -> list[str]:
        return [COLUMNS[i].key for i in visible_columns(COLUMNS, width)]

    assert shown(1000) == list(COLUMN_KEYS)
    at_80 = shown(80 - 2 - 2)  # an 80-column terminal: the table's border and scrollbar
    assert at_80 == ["pid", "name", "sockets", "send", "recv", "jail", "dropped"]
    assert shown(66) == ["pid", "name", "send", "jail", "dropped"]  # RECV did not fit after SEND
    assert shown(55) == ["pid", "name", "jail", "dropped"]  # priority 0 always stays
    assert shown(10) == ["pid", "name", "jail", "dropped"]
    widths = [shown(w) for w in range(40, 200)]
    for narrower, wider in itertools.pairwise(widths):
        assert set(narrower) <= set(wider)  # widening only ever adds columns


def test_status_line_shortens_by_parts_never_mid_word() -> None:
    from netjail.app.screens.main import status_line
    from netjail.backends.model import Snapshot

    snap = Snapshot(PROCESSES, 0.0, NETNS, denied=("fds of 2 processes: permission denied",))
    full = status_line(ViewOptions(), snap, 9, 3).plain
    assert full == "9 of 11 processes · 14 sockets · 3 jails · sort pid ▲ · networked · list · 1 unreadable"
    for width in range(20, len(full)):
        text = status_line(ViewOptions(), snap, 9, 3, width).plain
        words = set(full.split()) | {"9/11", "14", "sock", "pid▲", "net", "unread"}
        assert set(text.split()) <= words, text
        if width >= 30:
            assert (len(text) <= width and "9/11" in text) or "9 of 11" in text
            assert "pid" in text and "unread" in text  # the sort and what is unreadable stay


def test_a_long_jail_name_keeps_both_ends() -> None:
    jailed = replace(PROCESSES[5], jail="telemetryd-25")
    (row,) = build_rows((jailed,), ViewOptions(), {"telemetryd-25": 3})
    assert str(row.cells[COLUMN_KEYS.index("jail")]) == "telem…yd-25"

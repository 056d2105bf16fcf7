"""A process holding a packet socket (a real tcpdump) is shown as not fully blockable: `N!` in
its SOCK cell, a warning and the socket in the detail panel, and a warning after `b` + Enter
naming the socket a block leaves open."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from netjail.app.process_columns import COLUMN_KEYS
from netjail.app.process_view import ViewOptions, build_rows
from netjail.app.tui import create_app
from netjail.backends.engine import Engine
from netjail.backends.model import UnfilterableSocket
from netjail.widgets.block_dialog import BlockDialog
from netjail.widgets.process_detail import ProcessDetail, render_process
from netjail.widgets.process_table import ProcessTable
from rich.console import Console

from tests.tui.conftest import Notes, wait_until
from tests.tui.fakes import NETNS, PROCESSES
from tests.tui.rendered import widget_text
from tests.tui.test_block_flow import find

PACKET = UnfilterableSocket("packet", 4242, "raw", 3, 1, "lo")


def test_row_and_detail_mark_a_process_with_a_packet_socket() -> None:
    quiet = next(p for p in PROCESSES if not p.sockets and not p.jail)
    dumper = replace(quiet, unfilterable=(PACKET,))
    rows = build_rows([quiet, dumper], ViewOptions(), {})
    assert [r.process for r in rows] == [dumper]  # listed although it has no inet socket
    cell = rows[0].cells[COLUMN_KEYS.index("sockets")]
    assert str(cell) == "0!" and "yellow" in str(cell.style)  # type: ignore[union-attr]
    console = Console(width=200, record=True)
    console.print(render_process(dumper, NETNS))
    text = console.export_text()
    assert "not fully blockable: 1 packet socket (AF_PACKET)" in text and "seccomp" in text
    assert "packet lo * UNFILTERABLE" in " ".join(text.split())
    unmarked = build_rows([replace(dumper, unfilterable=())], ViewOptions(networked_only=False), {})
    assert str(unmarked[0].cells[COLUMN_KEYS.index("sockets")]) == ""


@pytest.fixture
def tcpdump() -> Iterator[subprocess.Popen[bytes]]:
    argv = ["tcpdump", "-i", "lo", "-n", "-w", "/dev/null"]
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdout=quiet, stderr=quiet, start_new_session=True)
    try:
        end = time.monotonic() + 10
        while not any(
            os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith("socket:")
            for fd in os.listdir(f"/proc/{proc.pid}/fd")
        ):
            assert time.monotonic() < end, "tcpdump opened no socket"
            time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


async def test_real_tcpdump_is_shown_not_fully_blockable_and_the_block_says_why(
    kernel: Engine, tcpdump: subprocess.Popen[bytes], notes: Notes
) -> None:
    inode = next(
        int(link[8:-1])
        for fd in os.listdir(f"/proc/{tcpdump.pid}/fd")
        if (link := os.readlink(f"/proc/{tcpdump.pid}/fd/{fd}")).startswith("socket:[")
    )
    assert str(inode) in Path("/proc/net/packet").read_text()
    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(140, 40), message_hook=notes.hook) as pilot:
        table = app.main.query_one(ProcessTable)
        await wait_until(pilot, lambda: app.main.host is not None, what="host info")
        await find(pilot, table, tcpdump.pid)
        assert table.cell_text(tcpdump.pid, "sockets") == "0!"
        body = app.main.query_one(ProcessDetail).query_one("#detail-body")
        await pilot.press("enter")  # maximised: every line of it on screen
        await wait_until(pilot, lambda: "not fully blockable" in widget_text(body), what="detail warning")
        assert "UNFILTERABLE" in widget_text(body)
        await pilot.press("escape")

        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")
        await pilot.press("enter")
        await wait_until(pilot, lambda: notes.having("jailed"), what="block notification")
        (warning,) = notes.having(f"socket:[{inode}]", "warning")
        assert warning[1] == "not fully blocked" and "AF_PACKET" in warning[2] and "seccomp" in warning[2]
    assert not notes.having("", "error"), notes.seen

"""The dashboard driven by keys against the real engine and kernel (make test's private netns):
a UDP sender found with `/`, blocked with `b` + Enter, its packets dropped by the kernel and
counted in the table and the jails panel, then released with `u`."""

from __future__ import annotations

import ctypes
import os
import socket
from collections.abc import Callable

from netjail.app.process_columns import middle
from netjail.app.tui import create_app
from netjail.backends.engine import Engine
from netjail.widgets.block_dialog import BlockDialog
from netjail.widgets.confirm_dialog import ConfirmDialog
from netjail.widgets.jails_panel import JailsPanel
from netjail.widgets.process_detail import ProcessDetail
from netjail.widgets.process_table import ProcessTable
from textual.widgets import Static

from tests.conftest import Peer
from tests.tui.conftest import Notes, count, settled, sleep_in_app, wait_until
from tests.tui.rendered import widget_text


async def find(pilot, table: ProcessTable, pid: int) -> None:  # type: ignore[no-untyped-def]
    """`/`, type the PID, Enter: the process is selected (esc first clears an earlier filter)."""
    await pilot.press("escape")
    await wait_until(pilot, lambda: table.row_of(pid) is not None, what=f"PID {pid} in the table")
    await pilot.press("slash", *str(pid), "enter")
    await wait_until(
        pilot, lambda: table.selected is not None and table.selected.pid == pid, what=f"PID {pid} selected"
    )


async def test_block_by_keyboard_drops_counts_and_unblock_restores(
    kernel: Engine, spawn_peer: Callable[..., Peer], notes: Notes
) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    sender = spawn_peer("udp-send", "127.0.0.1", recv.info["lport"])
    assert recv.wait_for(lambda c: int(c.get("received", 0)) > 10)  # type: ignore[call-overload]

    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(140, 40), message_hook=notes.hook) as pilot:
        table = app.main.query_one(ProcessTable)
        jails = app.main.query_one(JailsPanel)
        await wait_until(pilot, lambda: app.main.host is not None, what="host info")
        await find(pilot, table, sender.pid)

        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")
        await pilot.press("enter")
        await wait_until(pilot, lambda: notes.having("jailed"), what="block notification")
        await wait_until(pilot, lambda: table.cell_text(sender.pid, "jail"), what="jail shown in the table")
        row = table.row_of(sender.pid)
        jail = row.process.jail if row else None
        assert jail and table.cell_text(sender.pid, "jail") == middle(jail, 11)  # long names: cut

        # the kernel drops the sender's packets: the receiver's count stops rising
        frozen = await settled(pilot, recv)  # packets in flight at the block arrive
        await sleep_in_app(pilot, 1.5)
        assert recv.value("received") == frozen, "packets crossed after the block"

        # ... and the dashboard shows the drops rising, in the table and in the jails panel
        first = count(table.cell_text(sender.pid, "dropped"))
        first_panel = jails.views[jail].counters.total.dropped_packets  # type: ignore[union-attr]
        await sleep_in_app(pilot, 1.0)
        assert count(table.cell_text(sender.pid, "dropped")) > first > 0
        view = jails.views[jail]
        assert view.counters is not None and view.counters.total.dropped_packets > first_panel > 0
        assert view.rate is not None and view.rate > 0
        assert any(r > 0 for r in view.history)
        assert [m.pid for m in view.info.members] == [sender.pid]

        # `u` releases it: traffic flows again and the jail is gone from the panel
        await pilot.press("u")
        await wait_until(pilot, lambda: notes.having("released"), what="unblock notification")
        assert recv.wait_for(lambda c: int(c.get("received", 0)) > frozen + 10)  # type: ignore[call-overload]
        await wait_until(pilot, lambda: not table.cell_text(sender.pid, "jail"), what="jail column cleared")
        await wait_until(pilot, lambda: jail not in jails.views, what="jail card removed")
    assert not notes.having("", "error"), notes.seen


async def test_process_exiting_while_dialog_open_is_refused(
    kernel: Engine, spawn_peer: Callable[..., Peer], notes: Notes
) -> None:
    peer = spawn_peer("udp-bind", "127.0.0.1", 0)
    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(140, 40), message_hook=notes.hook) as pilot:
        table = app.main.query_one(ProcessTable)
        await wait_until(pilot, lambda: app.main.host is not None, what="host info")
        await find(pilot, table, peer.pid)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")

        peer.kill()
        await pilot.press("enter")
        await wait_until(pilot, lambda: notes.having("block failed", "error"), what="error notification")
        ((_, _, text),) = notes.having("block failed", "error")
        assert str(peer.pid) in text and "\n" not in text
        assert not isinstance(app.screen, BlockDialog)
        # the exited process leaves the table; nothing was jailed
        await wait_until(pilot, lambda: table.row_of(peer.pid) is None, what="exited process removed")
        assert table.selected is None or table.selected.pid != peer.pid
    assert kernel.jails() == ()


async def test_blocking_pid_1_is_refused_with_a_message(kernel: Engine, notes: Notes) -> None:
    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(140, 40), message_hook=notes.hook) as pilot:
        table = app.main.query_one(ProcessTable)
        await wait_until(pilot, lambda: app.main.host is not None, what="host info")
        await pilot.press("a")  # PID 1 has no socket here: show every process
        await find(pilot, table, 1)
        await pilot.press("b")
        await wait_until(pilot, lambda: notes.having("cannot block", "error"), what="refusal")
        assert not isinstance(app.screen, BlockDialog)
        ((_, _, text),) = notes.having("cannot block", "error")
        assert "1" in text
    assert kernel.jails() == ()


async def test_release_all_asks_first_then_frees_every_jail(
    kernel: Engine, spawn_peer: Callable[..., Peer], notes: Notes
) -> None:
    recv = spawn_peer("udp-recv", "127.0.0.1", 0)
    senders = [spawn_peer("udp-send", "127.0.0.1", recv.info["lport"]) for _ in range(2)]
    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(140, 40), message_hook=notes.hook) as pilot:
        table = app.main.query_one(ProcessTable)
        jails = app.main.query_one(JailsPanel)
        await wait_until(pilot, lambda: app.main.host is not None, what="host info")
        for sender in senders:
            await find(pilot, table, sender.pid)
            await pilot.press("b")
            await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")
            await pilot.press("enter")
            await wait_until(pilot, lambda s=sender: table.cell_text(s.pid, "jail"), what="jailed")  # type: ignore[misc]
        await wait_until(pilot, lambda: len(jails.views) == 2, what="two jail cards")
        frozen = await settled(pilot, recv)

        await pilot.press("exclamation_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirmation")
        await pilot.press("n")  # changed my mind: nothing happens
        await sleep_in_app(pilot, 0.5)
        assert len(kernel.jails()) == 2 and recv.value("received") == frozen

        await pilot.press("exclamation_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: notes.having("released 2 processes"), what="release notification")
        await wait_until(pilot, lambda: not jails.views, what="jail cards gone")
        assert recv.wait_for(lambda c: int(c.get("received", 0)) > frozen + 10)  # type: ignore[call-overload]
    assert kernel.jails() == ()


async def test_enter_shows_full_details_and_escape_returns(
    kernel: Engine, spawn_peer: Callable[..., Peer]
) -> None:
    peer = spawn_peer("tcp-listen", "127.0.0.1", 0)
    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(140, 40)) as pilot:
        table = app.main.query_one(ProcessTable)
        await find(pilot, table, peer.pid)
        await pilot.press("enter")
        detail = app.main.query_one(ProcessDetail)
        assert app.main.maximized is detail and detail.has_focus
        assert detail.process is not None and detail.process.pid == peer.pid
        assert [(s.local_port, s.state) for s in detail.process.sockets] == [(peer.info["lport"], "LISTEN")]
        await pilot.press("escape")
        assert app.main.maximized is None and table.has_focus


def _mark_inet_sockets(pid: int, mark: int) -> int:
    """Give every AF_INET socket of pid `mark` (pidfd_getfd + SO_MARK, as a routing daemon
    would); how many there were."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    done = 0
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:["):
                continue
            dup = libc.syscall(438, pidfd, int(name), 0)
            assert dup >= 0, os.strerror(ctypes.get_errno())
            with socket.socket(fileno=dup) as s:
                if s.family == socket.AF_INET:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
                    done += 1
    finally:
        os.close(pidfd)
    return done


async def test_socket_with_a_foreign_mark_is_refused_with_the_reason(
    kernel: Engine, spawn_peer: Callable[..., Peer], notes: Notes
) -> None:
    peer = spawn_peer("udp-send", "127.0.0.1", 9)
    assert _mark_inet_sockets(peer.pid, 0x1) == 1
    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(140, 40), message_hook=notes.hook) as pilot:
        table = app.main.query_one(ProcessTable)
        await wait_until(pilot, lambda: app.main.host is not None, what="host info")
        await find(pilot, table, peer.pid)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")
        await pilot.press("enter")
        await wait_until(pilot, lambda: notes.having("block failed", "error"), what="error notification")
        ((_, _, text),) = notes.having("block failed", "error")
        assert text.startswith(f"block failed: PID {peer.pid} socket:[") and "\n" not in text, text
        assert "carries mark 0x1, outside netjail's range 0xff000000: not blocked" in text, text
        assert not table.cell_text(peer.pid, "jail")
    assert kernel.jails() == ()


async def test_a_blocked_senders_destination_shows_in_its_detail_within_2_seconds(
    kernel: Engine, spawn_peer: Callable[..., Peer], notes: Notes
) -> None:
    """The attempts log, live: block a real sender by keyboard, and its detail panel names the
    address and port it keeps trying (the watcher's collector, read by the counters poll)."""
    sender = spawn_peer("udp-send", "127.0.0.9", 4712, interval=0.05)
    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(140, 40), message_hook=notes.hook) as pilot:
        table = app.main.query_one(ProcessTable)
        detail = app.main.query_one(ProcessDetail)
        await wait_until(pilot, lambda: app.main.host is not None, what="host info")
        await find(pilot, table, sender.pid)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BlockDialog), what="block dialog")
        await pilot.press("enter")
        await wait_until(pilot, lambda: notes.having("jailed"), what="block notification")

        def shown() -> bool:
            return "127.0.0.9:4712/udp" in widget_text(detail.query_one("#detail-body", Static))

        await wait_until(pilot, shown, timeout=2.0, what="the destination in the detail panel")
        await pilot.press("u")
        await wait_until(pilot, lambda: notes.having("released"), what="unblock notification")
    assert not notes.having("", "error"), notes.seen

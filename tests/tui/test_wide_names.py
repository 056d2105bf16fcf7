"""Names of double-width characters (CJK, emoji: a process chooses its own) are cut by the
cells a terminal gives them, never mid-character, so the columns after NAME stay in line."""

from __future__ import annotations

from collections.abc import Callable

from netjail.app.process_columns import COLUMNS, fit, middle, tree_name
from netjail.app.tui import create_app
from netjail.backends.engine import Engine
from netjail.widgets.process_table import ProcessTable
from rich.cells import cell_len

from tests.conftest import Peer
from tests.tui.rendered import widget_strips
from tests.tui.test_block_flow import find

WIDE = "网络名字" * 3 + "😀"  # 26 cells; its comm is the first 15 bytes, argv[0] all of it
NAME_WIDTH = next(c.width for c in COLUMNS if c.key == "name")


def test_cuts_count_cells_and_never_split_a_wide_character() -> None:
    assert fit("网络名字", 8) == "网络名字"
    assert fit("网络名字网", 8) == "网络名…" and cell_len(fit("网络名字网", 8)) == 7  # no half
    assert fit("a网络名字", 8) == "a网络名…" and cell_len(fit("a网络名字", 8)) == 8
    assert cell_len(middle("网络" * 8, 11)) <= 11 and middle("网络" * 8, 11).startswith("网络")
    assert cell_len(tree_name("│  ├─ ", WIDE, 18)) <= 18
    assert fit("\\x1b[2J" + WIDE, 18).startswith("\\x1b[2J")  # escapes stay as they were


async def test_a_real_process_with_a_wide_name_fits_its_column(
    kernel: Engine, spawn_peer: Callable[..., Peer]
) -> None:
    peer = spawn_peer("named", WIDE, user="nobody")
    app = create_app(kernel, interval=0.3, counters_interval=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.main.query_one(ProcessTable)
        await find(pilot, table, peer.pid)  # filtered down to it: its row is drawn
        await pilot.pause()
        assert table.row_of(peer.pid).process.name == WIDE  # type: ignore[union-attr]
        shown = table.cell_text(peer.pid, "name")
        assert shown is not None and shown.endswith("…")
        assert cell_len(shown) <= NAME_WIDTH
        assert WIDE.startswith(shown[:-1])  # whole characters only
        # drawn: the row is as wide as the header, and what follows NAME starts where it should
        strips = widget_strips(table)
        header = next(s.text for s in strips if "NAME" in s.text)
        row = next(s.text for s in strips if f" {peer.pid} " in s.text)
        assert cell_len(row) == cell_len(header)
        name_at = header.index("NAME")
        after = row[name_at:]  # everything before NAME is ASCII: same index in both
        assert after.startswith(shown), (header, row)
        assert after[len(shown) :].startswith(" " * (NAME_WIDTH - cell_len(shown)))

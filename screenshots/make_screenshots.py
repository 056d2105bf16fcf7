"""Real screenshots of netjail-tui for the README: the real engine, real processes, real drops.

    sudo .venv/bin/python screenshots/make_screenshots.py

In new network and PID namespaces (it re-executes itself under `unshare -n -p --mount-proc`), it
starts a few helper processes from tests/peers.py under telling names (symlinks to python: the
kernel names a process after the file it executed), blocks the UDP sender through the UI with
`/`, its PID, `b` and Enter, launches a command with `n` into a netns jail (a `sync-agent`
script on PATH that sends UDP where its allow-list does not reach), lets the dropped-packet
counters rise, and saves SVG screenshots (Textual's own) plus PNG renders of them. Every jail is
removed afterwards; the launched command dies with the private PID namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = REPO / "tests" / "peers.py"
UNSHARED = "NETJAIL_SCREENSHOTS_UNSHARED"
SIZE = (128, 38)
SMALL = ((100, 30), (80, 24))
SHOTS = (
    *("main-blocked", "main-100x30", "main-80x24", "main-80x24-panels"),
    *("block-dialog", "launch-dialog", "attempts", "help"),
)


def ensure_private_namespaces() -> None:
    """Re-execute under new network and PID namespaces (with their own /proc): the screenshots
    show only the processes started here, and no rule can reach the machine's own network."""
    own = str(os.stat("/proc/self/ns/net").st_ino)
    started_in = os.environ.get(UNSHARED)
    if started_in is None:
        os.environ[UNSHARED] = own
        # a default route into a dead-end veth: what a netns jail forwards reaches FORWARD, where
        # its allow-list drops (and counts) it, and goes nowhere beyond
        script = (
            "ip link set lo up && ip link add shots0 type veth peer name shots1 && "
            "ip link set shots0 up && ip link set shots1 up && ip addr add 10.198.0.1/30 dev shots0 && "
            'ip route add default via 10.198.0.2 dev shots0 onlink && exec "$0" "$@"'
        )
        argv = [
            "unshare",
            "-n",
            "-p",
            "-f",
            "--mount-proc",
            "--",
            "sh",
            "-c",
            script,
            sys.executable,
            *sys.argv,
        ]
        os.execvp("unshare", argv)
    if started_in == own:
        raise SystemExit("make_screenshots.py: still in the starting network namespace after unshare")


def svg_to_png(svg: Path, png: Path) -> None:
    """cairosvg cannot fetch Textual's web font; a local monospace font keeps the columns aligned."""
    import cairosvg

    text = (
        svg.read_text()
        .replace('"Fira Code"', '"DejaVu Sans Mono"')
        .replace("Fira Code, monospace", "DejaVu Sans Mono, monospace")
    )
    cairosvg.svg2png(bytestring=text.encode(), write_to=str(png))


@contextmanager
def peers(bin_dir: Path) -> Iterator[Callable[..., int]]:
    procs: list[subprocess.Popen[str]] = []

    def start(name: str, mode: str, *args: object) -> int:
        exe = bin_dir / name
        if not exe.exists():
            exe.symlink_to(sys.executable)
        proc = subprocess.Popen(
            [str(exe), str(PEERS), mode, *map(str, args), "--interval", "0.02"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise SystemExit(f"peer {name} did not start")
        # keep reading so the peer never blocks on a full pipe
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        return proc.pid

    try:
        yield start
    finally:
        for p in procs:
            p.kill()
            p.wait()


def command_on_path(bin_dir: Path, name: str, mode: str) -> None:
    """`name ARGS` runs `peers.py MODE ARGS`: a script, so the process is called `name`."""
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\nimport runpy, sys\n"
        f"sys.argv = [{str(PEERS)!r}, {mode!r}, *sys.argv[1:]]\n"
        f"runpy.run_path({str(PEERS)!r}, run_name='__main__')\n"
    )
    script.chmod(0o755)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


async def shoot(engine: Any) -> None:
    from netjail.app.tui import create_app
    from netjail.widgets.block_dialog import BlockDialog
    from netjail.widgets.jails_panel import JailsPanel
    from netjail.widgets.launch_dialog import LaunchDialog
    from netjail.widgets.process_table import ProcessTable
    from textual.widgets import Input

    with tempfile.TemporaryDirectory() as tmp, peers(Path(tmp)) as start:
        start("webapp", "tcp-listen", "127.0.0.1", 8080)
        for _ in range(2):
            start("curl", "tcp-client", "127.0.0.1", 8080)
        start("dnsmasq", "udp-bind", "127.0.0.53", 53)
        start("metrics-agent", "udp-recv", "127.0.0.1", 8125)
        start("rsyncd", "tcp-sink", "127.0.0.1", 873)
        start("backup-agent", "tcp-paced", "127.0.0.1", 873, 250_000)  # 250 kB/s: the SEND column
        sender = start("telemetryd", "udp-send", "127.0.0.1", 8125)
        command_on_path(Path(tmp), "sync-agent", "udp-send")
        app = create_app(engine, interval=1.0, counters_interval=0.5)
        async with app.run_test(size=SIZE) as pilot:
            table = app.main.query_one(ProcessTable)

            async def until(check: Callable[[], object], what: str) -> None:
                end = time.monotonic() + 20
                while not check():
                    if time.monotonic() > end:
                        raise SystemExit(f"make_screenshots.py: timed out waiting for {what}")
                    await pilot.pause(0.05)

            await until(lambda: table.row_of(sender) is not None, "the sender in the table")
            await pilot.press("slash", *str(sender), "enter", "b")
            await until(lambda: isinstance(app.screen, BlockDialog), "the block dialog")
            await pilot.press("tab", "tab", *"10.0.0.0/8, 192.168.1.5:53")
            await pilot.pause(0.3)
            app.save_screenshot("block-dialog.svg", str(HERE))
            await pilot.press("enter")
            await until(lambda: table.cell_text(sender, "jail"), "the jail in the table")

            await pilot.press("n")
            await until(lambda: isinstance(app.screen, LaunchDialog), "the launch dialog")
            await pilot.press(*"sync-agent 10.198.0.2 8125 --interval 0.05", "tab", "tab", *"10.1.0.0/16")
            for field in app.screen.query(Input):
                field.cursor_blink = False
            await pilot.pause(0.3)
            app.save_screenshot("launch-dialog.svg", str(HERE))
            await pilot.press("enter")
            jails = app.main.query_one(JailsPanel)
            await until(lambda: "sync-agent-1" in jails.views, "the launched command's jail")

            await pilot.press("escape")  # clear the filter: the whole table, the sender still selected
            await pilot.pause(30)  # the sparkline fills from the right
            app.save_screenshot("main-blocked.svg", str(HERE))
            for width, height in SMALL:  # the terminals people have: panels folded, columns by priority
                await pilot.resize_terminal(width, height)
                await pilot.pause(1.5)
                app.save_screenshot(f"main-{width}x{height}.svg", str(HERE))
            await pilot.press("p")  # the panels back on a small terminal
            await pilot.pause(1.5)
            app.save_screenshot("main-80x24-panels.svg", str(HERE))
            await pilot.press("p")
            await pilot.resize_terminal(*SIZE)
            await pilot.pause(0.5)
            await pilot.press("w")  # what the jails dropped, full screen
            await pilot.pause(1.0)
            app.save_screenshot("attempts.svg", str(HERE))
            await pilot.press("escape")
            await pilot.pause(0.5)
            await pilot.press("question_mark")
            await pilot.pause(0.5)
            app.save_screenshot("help.svg", str(HERE))


def main() -> int:
    if os.geteuid() != 0:
        print("make_screenshots.py: needs root (blocking a process in a private netns)", file=sys.stderr)
        return 3
    # names of our own (set before the re-exec: PIDs restart at 1 in the new PID namespace), so
    # nothing here can touch another netjail's jails on this machine
    os.environ.setdefault("NETJAIL_CGROUP_PARENT", f"netjail-shots-{os.getpid()}")
    os.environ.setdefault("NETJAIL_NETNS_PREFIX", f"shots{os.getpid()}-netjail-")
    ensure_private_namespaces()
    os.environ.setdefault("NETJAIL_STATE_DIR", tempfile.mkdtemp(prefix="netjail-shots-"))
    os.environ.pop("SUDO_USER", None)  # launched commands run as root, whose python this is
    from netjail.backends.engine import Engine
    from netjail.backends.system.inventory import Inventory

    engine = Engine(inventory=Inventory(traffic=True))  # as netjail-tui makes it: with the rates
    try:
        asyncio.run(shoot(engine))
    finally:
        engine.reset()  # outside the event loop: the engine's netlink code runs its own
        with contextlib.suppress(OSError):
            os.rmdir(f"/sys/fs/cgroup/unified/{os.environ['NETJAIL_CGROUP_PARENT']}")
    for name in SHOTS:
        svg_to_png(HERE / f"{name}.svg", HERE / f"{name}.png")
        print(f"screenshots/{name}.svg  screenshots/{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

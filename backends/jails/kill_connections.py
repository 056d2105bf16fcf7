"""Destroy established TCP sockets (SOCK_DESTROY through `ss -K`) so the program sees the break
at once instead of a silent stall. Needs CONFIG_INET_DIAG_DESTROY (`netjail doctor` checks)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from netjail.backends.errors import UnsupportedEnvironment
from netjail.backends.model import Socket
from netjail.backends.system import tools


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def kill_established(sockets: Iterable[Socket]) -> int:
    """Destroy each established TCP socket given; returns how many the kernel destroyed."""
    killed = 0
    ss = ""
    for s in sockets:
        if s.proto != "tcp" or s.state != "ESTABLISHED":
            continue
        ss = ss or tools.require("ss", "iproute2")
        try:
            out = subprocess.run(
                [
                    ss,
                    "-K",
                    "-H",
                    "-tn",
                    "-f",
                    s.family,
                    "state",
                    "established",
                    "src",
                    _endpoint(s.local_addr, s.local_port),
                    "dst",
                    _endpoint(s.remote_addr, s.remote_port),
                ],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except OSError as exc:
            raise UnsupportedEnvironment(f"`ss` (iproute2) is needed for --kill-connections: {exc}") from None
        killed += sum(1 for line in out.stdout.splitlines() if line.strip())
    return killed

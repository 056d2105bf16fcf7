"""A UDP sender that reports what happened to it, for commands the TUI launches or relaunches
(their stdout is a log file or /dev/null, so the report can go to a file of the test's).

    python udp_probe.py HOST PORT [--out FILE] [--interval SECONDS]

First line: {"pid", "cwd", "tag" ($NETJAIL_PROBE_TAG), "netns" (inode)}; then every 10 tries
{"pid", "sent", "errors", "errno"}. A refused socket() (seccomp: EACCES) is retried each time,
so the process keeps running and keeps saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import TextIO


def report(out: TextIO, **info: object) -> None:
    out.write(json.dumps({"pid": os.getpid(), **info}) + "\n")
    out.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--out")
    parser.add_argument("--interval", type=float, default=0.05)
    a = parser.parse_args()
    out = open(a.out, "a") if a.out else sys.stdout  # noqa: SIM115 (open for the whole run)
    netns = os.stat("/proc/self/ns/net").st_ino
    report(out, cwd=os.getcwd(), tag=os.environ.get("NETJAIL_PROBE_TAG"), netns=netns)
    sock: socket.socket | None = None
    sent = errors = last_errno = 0
    while True:
        try:
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.sendto(b"x" * 64, (a.host, a.port))
            sent += 1
        except OSError as exc:
            errors += 1
            last_errno = exc.errno or 0
        if (sent + errors) % 10 == 0:
            report(out, sent=sent, errors=errors, errno=last_errno)
        time.sleep(a.interval)


if __name__ == "__main__":
    main()

"""The jail chain's log rule, as the iptables backend writes and reads it back:

    -m limit --limit 200/sec --limit-burst 400 -j NFLOG --nflog-group G --nflog-size 384
        --nflog-prefix netjail:<lane>:<jail>

just before the chain's DROP. Its key's target is `NFLOG:<group>:<prefix>`, so a rule with
another group, size or prefix reads back as a different rule and is replaced
(docs/attempts.md). A non-standard target: counters.py counts it neither dropped nor allowed.
"""

from __future__ import annotations

import os

from netjail.backends.attempts import prefix

ENABLED_ENV = "NETJAIL_ATTEMPTS"  # "off": jail chains copy nothing to the attempts log

LOG_TARGET = "NFLOG:"
XT_LIMIT_SCALE = 10_000  # xt_rateinfo.avg: seconds per packet, times this
XT_NFLOG_F_COPY_LEN = 0x1
_PER = {"sec": 1, "second": 1, "min": 60, "minute": 60, "hour": 3600, "day": 86400}


def enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "on") != "off"


def target(lane: str, jail: str) -> str:
    return f"{LOG_TARGET}{prefix.group()}:{prefix.make(lane, jail)}"


def split(log_target: str) -> tuple[int, str]:
    """(group, prefix) of a target() string."""
    group, _, text = log_target[len(LOG_TARGET) :].partition(":")
    return int(group), text


def limit_avg() -> int:
    """The kernel's xt_rateinfo.avg for prefix.RATE ("200/sec" -> 50)."""
    count, _, unit = prefix.RATE.partition("/")
    return XT_LIMIT_SCALE * _PER[unit] // int(count)

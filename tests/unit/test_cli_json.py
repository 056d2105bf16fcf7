"""The CLI's two JSON encoders (app/cli_output.py: json's C encoder for small documents, orjson
for `ps`) write the same bytes: ASCII, U+FFFD for lone surrogates, the dataclasses' fields."""

from __future__ import annotations

import json

import pytest
from netjail.app.cli_output import dumps
from netjail.backends.model import Counters, JailCounters, JailInfo, Member, Process, Socket

NAMES = [
    "plain",
    "caf\u00e9 \u202eevil\u202c",  # non-ASCII, bidi override
    "\x1b]52;c;SGVsbG8=\x07\x85",  # OSC 52, C1 control
    "bad\udcffname",  # a byte that was not UTF-8 (surrogateescape)
    "\U0001f600 astral",
    'quote " backslash \\ tab \t',
]


def documents(name: str) -> list[object]:
    sock = Socket("inet", "tcp", "10.0.0.1", 80, "0.0.0.0", 0, "LISTEN", 4242)
    proc = Process(
        7, 1, name, f"/usr/bin/{name}", (name, "-x"), name, 0, None, 12, "/x", 4026531840, "S", (sock,), name
    )
    jail = JailInfo(name, "cgroup", ("10.0.0.0/8",), (Member(7, 12, True, name),), Counters(1, 2, 3, 4))
    return [
        [proc],
        [jail],
        (JailCounters(name, Counters(), Counters(5), Counters()),),
        {"jail": name, 3: [1, None, True, 2.5], "nested": {name: ()}},
        [],
    ]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pretty", [False, True])
def test_both_encoders_write_the_same_ascii_json(name: str, pretty: bool) -> None:
    for doc in documents(name):
        small, bulk = dumps(doc, pretty=pretty), dumps(doc, pretty=pretty, bulk=True)
        assert small == bulk
        assert small.endswith(b"\n") and small.isascii()
        assert (b"\n" in small[:-1]) == (pretty and doc != [])
        for text in _strings(json.loads(small)):
            text.encode("utf-8")  # strict: no lone surrogate left


def test_a_surrogate_becomes_the_replacement_character() -> None:
    assert json.loads(dumps({"n": "bad\udcffname"})) == {"n": "bad\ufffdname"}


def _strings(v: object) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [s for x in v for s in _strings(x)]
    if isinstance(v, dict):
        return [s for k, x in v.items() for s in (k, *_strings(x))]
    return []

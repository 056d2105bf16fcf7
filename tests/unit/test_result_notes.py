"""A result carries the notes of the call that made it (issue 12 #4), and --json output is the
document it was before notes moved there: they go to stderr, never into the result's JSON."""

from __future__ import annotations

import json

from netjail.app.cli_output import dumps
from netjail.backends.model import BlockResult, LaunchResult, Member, UnblockResult


def test_notes_are_not_in_the_json_document() -> None:
    results = (
        BlockResult("j", "cgroup", (Member(1, 2, True, "x"),), 0, notes=("drift repaired",)),
        UnblockResult((), ("j",), notes=("drift repaired",)),
        LaunchResult("j", "netns", 3, notes=("ip_forward enabled",)),
    )
    for result in results:
        assert result.notes
        doc = json.loads(dumps(result))
        assert "notes" not in doc
        assert "j" in json.dumps(doc)  # the rest of the result is still there


def test_the_document_keeps_its_keys_in_order() -> None:
    doc = json.loads(dumps(UnblockResult((), ("a", "b"), notes=("n",))))
    assert list(doc) == ["released", "removed_jails"]
    assert doc == {"released": [], "removed_jails": ["a", "b"]}


def test_notes_do_not_make_results_differ() -> None:
    assert UnblockResult((), ("a",), notes=("n",)) == UnblockResult((), ("a",))

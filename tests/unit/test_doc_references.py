"""Every doc a comment or docstring cites exists, and so does the numbered section it names.

Code cites `docs/<file>.md`, `docs/<file>.md #N` (a numbered item, as in kernel-facts.md) and
`docs/<file>.md §N` (a numbered heading, as in security.md's "### 5b. ..."). A citation split
over two comment lines counts as one. Bare "fact N", "DESIGN.md" and `README "Section"` forms
are checked too: the first two name nothing in this repository, the last must be a heading.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("app", "backends", "widgets", "tests", "bench", "screenshots")

_CONTINUATION = re.compile(r"\n[ \t]*#?[ \t]*")  # a comment or docstring going on below
_DOC_REF = re.compile(r"docs/([A-Za-z0-9_-]+\.md)(?:[ \t]*(?:§[ \t]*(\d+[a-z]?)\b|#(\d+[a-z]?)\b))?")
_BARE_FACT = re.compile(r"(?<![\w-])facts? #?\d+", re.IGNORECASE)
_README_SECTION = re.compile(r'README(?:\.md)? "([^"]+)"')
_NUMBERED_ITEM = re.compile(r"^(\d+[a-z]?)\.\s", re.M)  # "7. **...**" in a numbered list
_NUMBERED_HEADING = re.compile(r"^#+\s+(\d+[a-z]?)\.\s", re.M)  # "### 5b. ..."
_HEADING = re.compile(r"^#+\s+(.+?)\s*$", re.M)


def numbered_sections(doc: Path) -> set[str]:
    text = doc.read_text()
    return set(_NUMBERED_ITEM.findall(text)) | set(_NUMBERED_HEADING.findall(text))


def broken_references(text: str, docs: Path, readme: Path) -> list[str]:
    """What `text` cites that does not resolve, one line each."""
    flat = _CONTINUATION.sub(" ", text)
    broken: list[str] = []
    for m in _DOC_REF.finditer(flat):
        name, section = m.group(1), m.group(2) or m.group(3)
        doc = docs / name
        if not doc.is_file():
            broken.append(f"docs/{name}: no such file")
        elif section is not None and section not in numbered_sections(doc):
            broken.append(f"{m.group(0)}: docs/{name} has no numbered section {section}")
    broken += [f"{m.group(0)!r}: cite docs/kernel-facts.md #N" for m in _BARE_FACT.finditer(flat)]
    if "DESIGN.md" in flat:
        broken.append("DESIGN.md: not in this repository (docs/kernel-facts.md, docs/architecture.md)")
    headings = set(_HEADING.findall(readme.read_text()))
    for m in _README_SECTION.finditer(flat):
        if m.group(1) not in headings:
            broken.append(f"{m.group(0)}: README.md has no such heading")
    return broken


def _sources() -> list[Path]:
    return sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py") if p != Path(__file__).resolve())


def test_every_doc_reference_in_the_code_resolves() -> None:
    docs, readme = ROOT / "docs", ROOT / "README.md"
    found = 0
    problems: list[str] = []
    for path in _sources():
        text = path.read_text()
        found += len(_DOC_REF.findall(_CONTINUATION.sub(" ", text)))
        problems += [f"{path.relative_to(ROOT)}: {p}" for p in broken_references(text, docs, readme)]
    assert found >= 30, f"only {found} doc references found: is the scan looking in the right place?"
    assert not problems, "\n".join(problems)


def test_a_broken_reference_is_caught(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "facts.md").write_text("# Facts\n\n1. **one**\n2. **two**\n")
    (docs / "model.md").write_text("# Model\n\n### 3. rule three\n### 5b. rule five b\n")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Usage\n")
    good = (
        "# see docs/facts.md #2 and docs/model.md §5b\n"
        '# (docs/facts.md\n#  #1) split over two comment lines; README "Usage"\n'
    )
    assert broken_references(good, docs, readme) == []
    bad = (
        '"""docs/facts.md #3, docs/model.md §4, docs/missing.md,\n'
        'fact 9, DESIGN.md, README "Performance"."""\n'
    )
    assert broken_references(bad, docs, readme) == [
        "docs/facts.md #3: docs/facts.md has no numbered section 3",
        "docs/model.md §4: docs/model.md has no numbered section 4",
        "docs/missing.md: no such file",
        "'fact 9': cite docs/kernel-facts.md #N",
        "DESIGN.md: not in this repository (docs/kernel-facts.md, docs/architecture.md)",
        'README "Performance": README.md has no such heading',
    ]

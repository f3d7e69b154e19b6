"""The README works for a newcomer: its "Using it" block runs as written, in order, and its
links lead to files and headings that exist. (Running the block for real is
``tests/integration/test_readme.py``.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream.cli.main import build_parser
from tests.readme_commands import LONG_RUNNING, README, ROOT, command, using_it_block, words

DOCS = [README, ROOT / "ops" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def test_every_line_is_a_command_that_parses_as_written() -> None:
    lines = using_it_block()
    assert len(lines) >= 10
    for line in lines:
        if line.startswith("export "):
            continue
        argv = words(line)
        assert argv[:1] == ["engagement"], f"not an engagement command: {line}"
        assert not any(re.fullmatch(r"\[.*\]|[A-Z]{2,}", w) for w in argv), f"placeholder: {line}"
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"does not parse ({exc.code}): {line}")


def test_the_block_starts_the_stack_first_and_stops_it_last() -> None:
    lines = using_it_block()
    assert words(lines[0]) == ["engagement", "stack", "up"]
    assert words(lines[-1]) == ["engagement", "stack", "down"]


def test_each_long_running_process_is_checked_by_its_role() -> None:
    lines = using_it_block()
    started = [command(line) for line in lines if command(line) in {"worker", "notifier"}]
    checked = [words(line)[-1] for line in lines if command(line) == "check"]
    assert started == checked
    assert {command(line) for line in lines} >= LONG_RUNNING


def test_files_a_command_reads_come_from_an_earlier_line() -> None:
    written: set[str] = set()
    for line in using_it_block():
        argv = words(line)
        if command(line) == "publish":
            assert Path(argv[2]).parts[0] in written, f"nothing earlier writes {argv[2]}: {line}"
        if "--sim-dir" in argv:
            folder = argv[argv.index("--sim-dir") + 1]
            assert folder in written, f"nothing earlier writes {folder}: {line}"
        if "--out" in argv:
            written.add(Path(argv[argv.index("--out") + 1]).parts[0])


# -- links -------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for heading in HEADING.findall(text):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        anchors.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_leads_to_a_file_and_heading_that_exist(doc: Path) -> None:
    broken = []
    for link in LINK.findall(FENCE.sub("", doc.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z]+:", link):
            continue  # a web address
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists() or ROOT not in path.parents:
            broken.append(link)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(link)
    assert broken == []


def test_the_anchor_check_knows_github_slugs() -> None:
    assert _slug("4. Event time: days, the watermark and the grace period") == (
        "4-event-time-days-the-watermark-and-the-grace-period"
    )
    assert _slug("`engagement rules check`") == "engagement-rules-check"
    assert "event-time-and-watermarks" in _anchors(README)


def test_the_readme_names_the_license_and_links_it() -> None:
    text = README.read_text(encoding="utf-8")
    assert "](LICENSE)" in text
    assert "Apache License 2.0" in text or "Apache-2.0" in text

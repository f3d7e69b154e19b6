"""The README and docs point only at files that are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "ops" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("stream", "agents", "schemas", "sinks", "ops", "tests", "docs")
# `dir/file.ext` or `dir/sub/` in backticks, optionally followed by `:name` or ` (…)`.
CODE_PATH = re.compile(rf"`((?:{'|'.join(TOP)})/[\w./-]*?)(?::\w+)?`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _paths(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    found = [m for m in CODE_PATH.findall(text) if "{" not in m and "*" not in m]
    found += [
        str((doc.parent / link).relative_to(ROOT)) if not link.startswith("/") else link
        for link in LINK.findall(text)
        if not re.match(r"^[a-z]+:", link)
    ]
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    missing = [p for p in _paths(doc) if not (ROOT / p).exists()]
    assert missing == []


def test_the_check_sees_paths_and_links(tmp_path: Path) -> None:
    assert "docs/architecture.md" in _paths(ROOT / "README.md")
    assert any(p.startswith("agents/") for p in _paths(ROOT / "docs" / "architecture.md"))

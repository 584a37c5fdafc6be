"""Claims about the documentation that hold without running anything: the README stays
short, every relative link in README.md, docs/ and the method READMEs resolves (file and
#anchor), every docs page is listed, every method README follows the one template, and
the concern → files table of docs/layout.md names files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
METHOD_READMES = sorted((REPO / "methods").glob("*/README.md"))
PAGES = [README, *DOCS, *METHOD_READMES]

README_MAX_BYTES = 12 * 1024
TEMPLATE = ["## Run", "## Our figures beside the paper's", "## Deviations", "## What did not reproduce"]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # https:, mailto:, ...


def _prose(text: str) -> str:
    """The text outside fenced code blocks and code spans (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(page: Path) -> list[str]:
    text = _prose(page.read_text())
    return INLINE_LINK.findall(text) + REFERENCE_DEF.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces → hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        if EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    return broken


def test_the_readme_is_at_most_12_kb():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_pages_checked_include_the_docs_and_every_method_readme():
    assert len(DOCS) >= 8 and len(METHOD_READMES) == 10


def test_a_broken_link_or_anchor_is_caught(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# There\n\n## A heading (with `code`)\n")
    page.write_text("[ok](there.md) [ok](there.md#a-heading-with-code) [ok](#self) [web](https://x.y)\n"
                    "`[not a link](nowhere.md)`\n\n```\n[not a link](nowhere.md)\n```\n\n# Self\n"
                    "[gone](gone.md) [bad anchor](there.md#nope)\n")
    assert broken_links(page) == ["gone.md (no such file)", "there.md#nope (no heading #nope in there.md)"]


def test_every_docs_page_is_listed_in_the_readme_and_the_docs_index():
    readme, index = links(README), links(REPO / "docs" / "README.md")
    for page in DOCS:
        assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"
        if page.name != "README.md":
            assert page.name in index, f"docs/README.md does not list {page.name}"
    for readme_path in METHOD_READMES:
        assert f"../{readme_path.relative_to(REPO)}" in index


@pytest.mark.parametrize("page", METHOD_READMES, ids=lambda p: p.parent.name)
def test_every_method_readme_follows_the_template(page):
    text = _prose(page.read_text())
    headings = [line.rstrip() for line in text.splitlines() if line.startswith("## ")]
    assert headings[:len(TEMPLATE)] == TEMPLATE, headings[:len(TEMPLATE)]
    before_run = text[:text.index("\n## Run")]
    assert before_run.startswith("# ") and "**Paper.**" in before_run
    assert re.search(r"(19|20)\d\d", before_run), "the paper's year"
    assert "| " in text[text.index("## Our figures beside the paper's"):text.index("## Deviations")], \
        "the figures section has a table"


def test_the_concern_table_names_files_that_exist():
    """docs/layout.md's "Where is …?" table: every path it names is in the tree. A name without
    a folder (`test_ledger.py`) lives in the folder of the path before it in the same cell."""
    table = (REPO / "docs" / "layout.md").read_text().split("## Where is", 1)[1]
    missing = []
    for row in table.splitlines():
        if not row.startswith("| ") or row.startswith("| concern") or row.startswith("|---"):
            continue
        for cell in row.split(" | ")[1:3]:  # code, tests
            folder = None
            for name in re.findall(r"`([^`\s]+)`", cell):
                if "/" in name:
                    folder = name if name.endswith("/") else name.rsplit("/", 1)[0] + "/"
                    path = name
                elif name.endswith(".py") and folder:
                    path = folder + name
                else:
                    continue
                if not list(REPO.glob(path.rstrip("/"))):
                    missing.append(path)
    assert missing == []

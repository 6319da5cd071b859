"""The book's chapters run: every code cell of every chapter, in order, at the tiny scale.

``make docs`` executes the chapters with myst-nb at the full scale; these tests run the same
cells in this process (``MUSICSSL_BOOK_SCALE=tiny``), so that a change to the library that
breaks a chapter fails here and not only when the book is built.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("myst_nb", reason="the docs extra is not installed (pip install -e '.[docs]')")

DOCS = Path(__file__).resolve().parent.parent / "docs"
SOURCE = DOCS.parent / "src"
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
TOCTREE = re.compile(r"^```\{toctree\}\n(.*?)^```", re.MULTILINE | re.DOTALL)
LITERAL = re.compile(r"^```\{literalinclude\} (\S+)\n:pyobject: (\S+)", re.MULTILINE)
CITATION = re.compile(r"\{cite:[pt]\}`([^`]+)`")
BIB_ENTRY = re.compile(r"^@\w+\{([^,\s]+),", re.MULTILINE)


def chapters() -> list[str]:
    """The documents of the index's toctree, in reading order."""
    block = TOCTREE.search((DOCS / "index.md").read_text(encoding="utf-8"))
    assert block is not None, "docs/index.md has no toctree"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()[:1].isalnum()]


def code_cells(text: str) -> list[str]:
    """The code of every ``{code-cell}`` of a MyST notebook, options (``:tags:``) removed."""
    cells = []
    for match in CELL.finditer(text):
        lines = match.group(1).splitlines()
        while lines and lines[0].startswith(":"):
            lines.pop(0)
        cells.append("\n".join(lines))
    return cells


def test_code_cells_are_found_with_their_options_removed():
    text = "x\n```{code-cell} ipython3\n:tags: [hide-input]\n\na = 1\n```\n\n```python\nb\n```\n"
    assert code_cells(text) == ["\na = 1"]


def test_every_chapter_is_in_the_toctree():
    listed = set(chapters())
    pages = {path.stem for path in DOCS.glob("*.md")} - {"index"}
    assert pages == listed


@pytest.mark.parametrize("chapter", chapters())
def test_literal_includes_name_existing_functions(chapter: str):
    text = (DOCS / f"{chapter}.md").read_text(encoding="utf-8")
    for relative, name in LITERAL.findall(text):
        source = (DOCS / relative).resolve()
        assert source.is_relative_to(SOURCE) and source.is_file(), relative
        found = re.search(rf"^(def {name}\(|class {name}\b)", source.read_text("utf-8"), re.M)
        assert found, f"{relative} defines no {name}"


def test_every_citation_is_in_the_bibliography():
    entries = BIB_ENTRY.findall((DOCS / "references.bib").read_text(encoding="utf-8"))
    assert len(entries) == len(set(entries)), "references.bib repeats a key"
    cited = {
        key.strip()
        for page in DOCS.glob("*.md")
        for keys in CITATION.findall(page.read_text(encoding="utf-8"))
        for key in keys.split(",")
    }
    assert cited, "no chapter cites anything"
    assert cited <= set(entries), sorted(cited - set(entries))


@pytest.fixture(scope="module")
def book_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder for all chapters, as in a build: the tiny corpus is rendered once."""
    return tmp_path_factory.mktemp("book")


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_runs_at_the_tiny_scale(
    chapter: str, book_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("MUSICSSL_BOOK_SCALE", "tiny")
    monkeypatch.setenv("MUSICSSL_BOOK_DATA", str(book_data))
    monkeypatch.chdir(tmp_path)
    # A chapter may register a method or an encoder of its own: for itself alone.
    from musicssl.encoders import ENCODERS
    from musicssl.methods import METHODS

    registries = [(registry, dict(registry)) for registry in (ENCODERS, METHODS)]
    namespace: dict[str, object] = {"__name__": f"book_{chapter}"}
    try:
        for number, cell in enumerate(code_cells((DOCS / f"{chapter}.md").read_text("utf-8"))):
            try:
                exec(compile(cell, f"docs/{chapter}.md[cell {number}]", "exec"), namespace)
            finally:
                plt.close("all")
    finally:
        for registry, before in registries:
            registry.clear()
            registry.update(before)
    assert os.listdir(tmp_path) == [], "a chapter wrote outside MUSICSSL_BOOK_DATA"

"""Which compositions of music21's bundled corpus the built-in corpus uses, and their splits.

A *candidate* is one score file (or one tune of a multi-tune ABC file) of a style. Candidates
are grouped into *works* (a string quartet's movements form one work) and each work gets a
split (train/valid/test) from a hash of its name alone, so the split of a piece never depends
on the seed or on the size of the build: no piece, and no movement of one quartet, ever sits
in two splits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "valid", "test")
# Cumulative fractions of works that go to train, then valid; the rest is test.
SPLIT_FRACTIONS = (0.70, 0.85)


# The German collections of the Essen folk song database (as ABC in music21's corpus).
_ESSEN_GERMAN = (
    "altdeu10",
    "altdeu20",
    "ballad10",
    "ballad20",
    "ballad30",
    "ballad40",
    "ballad50",
    "ballad60",
    "ballad70",
    "ballad80",
    "boehme10",
    "boehme20",
    "dva0",
    "erk10",
    "erk20",
    "erk30",
    "erk5",
    "fink0",
    "kinder0",
    "zuccal0",
)
_QUARTET_COMPOSERS = ("haydn", "mozart", "beethoven")
# Mozart's K. 545 in the corpus is a piano sonata, not a quartet.
_NOT_QUARTETS = ("mozart/k545",)


@dataclass(frozen=True)
class Candidate:
    """One score (or one tune of a multi-tune file) that may become a piece of the corpus.

    Attributes:
        style: the style name.
        piece_id: a file-name-safe identifier, unique in the corpus, e.g. ``"bach-bwv66.6"``.
        source: path of the score inside music21's corpus folder, e.g. ``"bach/bwv66.6.mxl"``.
        number: the tune number (``X:`` field) inside a multi-tune ABC file, else ``None``.
        work: the unit of the split: movements of one quartet share a work.
        composer: "Bach", "Haydn", ..., or "traditional".
        size_bytes: size of the source file (tiny builds skip large files to stay fast).
    """

    style: str
    piece_id: str
    source: str
    number: int | None
    work: str
    composer: str
    size_bytes: int


def corpus_root() -> Path:
    """The folder of music21's bundled score corpus."""
    import music21.corpus

    return Path(music21.corpus.__file__).parent


def _candidate(
    style: str,
    root: Path,
    path: Path,
    piece_id: str,
    work: str,
    composer: str,
    number: int | None = None,
) -> Candidate:
    return Candidate(
        style=style,
        piece_id=piece_id,
        source=path.relative_to(root).as_posix(),
        number=number,
        work=work,
        composer=composer,
        size_bytes=path.stat().st_size,
    )


def list_candidates(style: str) -> list[Candidate]:
    """All candidate scores of one style, in a fixed order (sorted by piece id).

    Args:
        style: a key of :data:`STYLES`.

    Returns:
        The candidates; parsing decides later which of them are usable.
    """
    root = corpus_root()
    found: list[Candidate] = []
    if style == "bach_chorale":
        # Chorales are cantata movements (bwv66.6) and the four-part chorales BWV 250-438;
        # versions of one chorale (bwv248.9-1, bwv248.9-s) are one work.
        for path in (root / "bach").glob("bwv*.mxl"):
            match = re.fullmatch(r"bwv(\d+)(\.\d+)?(-.+)?", path.stem)
            if match is None or (match[2] is None and not 250 <= int(match[1]) <= 438):
                continue
            work = f"bach-bwv{match[1]}{match[2] or ''}"
            found.append(_candidate(style, root, path, f"bach-{path.stem}", work, "Bach"))
    elif style == "palestrina_mass":
        for path in (root / "palestrina").glob("*.krn"):
            # The sections of one mass (Kyrie, Gloria, ...) are one work: its !!!OPR title.
            with open(path, encoding="latin-1") as handle:
                header = handle.read(2000)
            mass = re.search(r"^!!!OPR:\s*(.+?)\s*$", header, flags=re.M)
            pid = f"palestrina-{path.stem}"
            work = f"palestrina-{mass[1]}" if mass else pid
            found.append(_candidate(style, root, path, pid, work, "Palestrina"))
    elif style == "monteverdi_madrigal":
        for path in (root / "monteverdi").glob("madrigal.*.mxl"):
            if path.stem.endswith("_old"):
                continue
            pid = f"monteverdi-{path.stem}"
            found.append(_candidate(style, root, path, pid, pid, "Monteverdi"))
    elif style == "string_quartet":
        for composer in _QUARTET_COMPOSERS:
            for path in (root / composer).rglob("*.mxl"):
                rel = path.relative_to(root).with_suffix("").as_posix()
                if any(rel.startswith(skip) for skip in _NOT_QUARTETS):
                    continue
                work = "/".join(rel.split("/")[:2])
                pid = rel.replace("/", "-")
                found.append(_candidate(style, root, path, pid, work, composer.capitalize()))
    elif style == "fiddle_tune":
        for path in (root / "ryansMammoth").glob("*.abc"):
            pid = f"ryans-{path.stem}"
            found.append(_candidate(style, root, path, pid, pid, "traditional"))
    elif style == "german_folk_song":
        for stem in _ESSEN_GERMAN:
            path = root / "essenFolksong" / f"{stem}.abc"
            if not path.exists():
                continue
            text = path.read_text(encoding="latin-1")
            numbers = sorted({int(n) for n in re.findall(r"^X:\s*(\d+)", text, flags=re.M)})
            for number in numbers:
                pid = f"essen-{stem}-{number:04d}"
                found.append(_candidate(style, root, path, pid, pid, "traditional", number))
    else:
        raise KeyError(style)
    found.sort(key=lambda c: c.piece_id)
    return found


def _work_rank(style: str, work: str) -> str:
    return hashlib.sha256(f"{style}/{work}".encode()).hexdigest()


def assign_splits(candidates: list[Candidate]) -> dict[str, str]:
    """The split of every work of one style's candidates.

    Works are ranked by a hash of their name and cut at 70 % / 85 % of the ranking, so the
    proportions of works are 70/15/15 within each style (stratified) and the split of a work
    depends on nothing but its name.

    Args:
        candidates: candidates of a single style.

    Returns:
        A mapping from work to ``"train"``, ``"valid"`` or ``"test"``.
    """
    works = sorted({c.work for c in candidates}, key=lambda w: _work_rank(candidates[0].style, w))
    splits = {}
    for rank, work in enumerate(works):
        position = (rank + 0.5) / len(works)
        if position < SPLIT_FRACTIONS[0]:
            splits[work] = SPLITS[0]
        elif position < SPLIT_FRACTIONS[1]:
            splits[work] = SPLITS[1]
        else:
            splits[work] = SPLITS[2]
    return splits

"""Helpers the table and the data-set loaders share: key spelling, hash splits, file checks."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import mir_eval.key

from musicssl.errors import MusicSSLError
from musicssl.spelling import PITCH_CLASSES


def canonical_key(text: str) -> str:
    """A key annotation as one of the 24 key classes, in ``mir_eval.key`` format.

    The tonic is case-insensitive and respelled with ``PITCH_CLASSES`` (``"d# minor"`` and
    ``"Eb minor"`` both give ``"Eb minor"``); the mode must be major or minor.

    Raises:
        MusicSSLError: the text is not "<tonic> <major|minor>" (``mir_eval.key.validate_key``
            decides what a tonic is; "X" and the mode "other" are not one of the 24 classes).
    """
    words = text.split()
    if len(words) != 2:
        raise MusicSSLError(f"key {text!r} is not of the form '<tonic> <major|minor>'")
    tonic, mode = words[0].capitalize(), words[1].lower()
    try:
        mir_eval.key.validate_key(f"{tonic} {mode}")
    except ValueError:  # mir_eval's words name its own "X" and "other": say ours
        raise MusicSSLError(
            f"key {text!r}: not one of the 24 major and minor keys (a tonic A to G, with # or "
            "b, then major or minor, e.g. 'F# minor')"
        ) from None
    semitone, mode = mir_eval.key.split_key_string(f"{tonic} {mode}")
    if semitone is None or mode not in ("major", "minor"):
        raise MusicSSLError(f"key {text!r}: not one of the 24 major and minor keys")
    return f"{PITCH_CLASSES[semitone]} {mode}"


def hash_order(keys: Iterable[str]) -> list[str]:
    """Distinct keys ordered by the SHA-1 of their text: a shuffle that never changes."""
    return sorted(set(keys), key=lambda key: (hashlib.sha1(key.encode()).hexdigest(), key))


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def hash_split(keys: Iterable[str], *, valid: float, test: float) -> dict[str, str]:
    """Assign each distinct key to train, valid or test in proportions ``1 - valid - test``,
    ``valid``, ``test`` of the key count (rounded half up).

    A split with a positive proportion gets at least one key when there are three keys or
    more (two or more for a two-way split); fewer keys all go to train.
    """
    ordered = hash_order(keys)
    count = len(ordered)
    needed = 1 + (valid > 0) + (test > 0)
    num_valid = max(1, _round_half_up(count * valid)) if valid > 0 and count >= needed else 0
    num_test = max(1, _round_half_up(count * test)) if test > 0 and count >= needed else 0
    num_train = count - num_valid - num_test
    splits = ["train"] * num_train + ["valid"] * num_valid + ["test"] * num_test
    return dict(zip(ordered, splits))


def first_few(items: Sequence[str]) -> str:
    """The first few items of a list for an error message."""
    return ", ".join(items[:5]) + (" …" if len(items) > 5 else "")


def left_out(items: Sequence[str], why: str) -> str:
    """``Task.left_out``'s sentence for ``items`` left out because ``why``; "" for none."""
    return f"{len(items)} left out ({why}): {first_few(list(items))}" if items else ""


def relative_name(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def need(path: Path, layout: str) -> Path:
    """``path`` when it exists; else an error naming it and the layout expected."""
    if not path.exists():
        raise MusicSSLError(f"{path}: not found; expected {layout}")
    return path

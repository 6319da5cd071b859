import errno
import os
from pathlib import Path

import numpy as np
import pytest

from musicssl.files import atomic_path, clip_rng, write_bytes, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    target = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_full_disk_names_the_target_not_the_temporary(tmp_path: Path):
    target = tmp_path / "out.bin"
    with pytest.raises(OSError) as caught, atomic_path(target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_writes_are_whole_and_keep_the_extension(tmp_path: Path):
    seen = []
    with atomic_path(tmp_path / "x.npz") as temporary:
        seen.append(temporary.suffix)
        temporary.write_bytes(b"1")
    assert seen == [".npz"]
    assert write_bytes(tmp_path / "b", b"\x00\x01").read_bytes() == b"\x00\x01"


def test_a_clips_generator_depends_on_seed_and_id_only():
    a = clip_rng(0, "bach-bwv1-00").integers(0, 2**31, 4)
    assert np.array_equal(a, clip_rng(0, "bach-bwv1-00").integers(0, 2**31, 4))
    assert not np.array_equal(a, clip_rng(1, "bach-bwv1-00").integers(0, 2**31, 4))
    assert not np.array_equal(a, clip_rng(0, "bach-bwv1-01").integers(0, 2**31, 4))

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musicssl import audio
from musicssl.corpus import index_folder
from musicssl.errors import MusicSSLError
from musicssl.manifest import read_manifest, write_jsonl
from musicssl.pack import manifest_digest, pack
from musicssl.store import SampleStore

from conftest import tone


@pytest.fixture
def manifest(tmp_path: Path, write_audio) -> Path:
    rng = np.random.default_rng(0)
    for number in range(6):
        noise = rng.uniform(-0.3, 0.3, 16000 + 1000 * number).astype(np.float32)
        write_audio(f"audio/{number}.wav", noise, 16000, subtype="PCM_16")
    write_audio("audio/resampled.flac", tone(300, sr=22050, seconds=1.0), 22050)
    index_folder(tmp_path / "audio", out=tmp_path / "m.jsonl", progress=False)
    return tmp_path / "m.jsonl"


def test_store_crop_equals_decoded_audio(manifest: Path, tmp_path: Path):
    summary = pack(manifest, out=tmp_path / "store", progress=False)
    store = SampleStore(tmp_path / "store")
    assert len(store) == summary.clips == 7 and store.sr == 16000
    for index, row in enumerate(store.rows):
        decoded = audio.load(tmp_path / row["path"], sr=16000)
        assert store.num_samples(index) == len(decoded)
        # 16-bit PCM sources round-trip exactly; others to within int16 quantisation.
        exact = row["path"].endswith(".wav")
        crop = store.crop(index, 1234, 4000)
        np.testing.assert_allclose(crop, decoded[1234:5234], atol=0 if exact else 1 / 32768)
    assert store.crop(0, 0, 1).dtype == np.float32


def test_crop_past_the_end_is_zero_padded(manifest: Path, tmp_path: Path):
    pack(manifest, out=tmp_path / "store", progress=False)
    store = SampleStore(tmp_path / "store")
    length = store.num_samples(0)
    crop = store.crop(0, length - 100, 300)
    np.testing.assert_array_equal(crop[:100], store.clip(0)[-100:])
    assert not crop[100:].any()
    with pytest.raises(MusicSSLError):
        store.crop(0, -1, 10)


def test_pack_skips_a_file_that_went_bad(manifest: Path, tmp_path: Path):
    (tmp_path / "audio/2.wav").write_bytes(b"")
    summary = pack(manifest, out=tmp_path / "store", progress=False)
    assert summary.clips == 6
    assert summary.skipped == [{"path": "audio/2.wav", "reason": "empty file (0 bytes)"}]


def test_pack_again_is_up_to_date_and_a_changed_manifest_repacks(manifest: Path, tmp_path: Path):
    pack(manifest, out=tmp_path / "store", progress=False)
    assert pack(manifest, out=tmp_path / "store", progress=False).up_to_date
    rows = [json.loads(line) for line in manifest.read_text().splitlines()][:2]
    write_jsonl(manifest, rows)
    summary = pack(manifest, out=tmp_path / "store", progress=False)
    assert not summary.up_to_date and len(SampleStore(tmp_path / "store")) == 2
    assert sorted(os.listdir(tmp_path)) == ["audio", "m.bad.jsonl", "m.jsonl", "store"]


def test_a_folder_moved_with_its_store_is_up_to_date_when_its_rows_carry_their_hashes(
    manifest: Path, tmp_path: Path
):
    pack(manifest, out=tmp_path / "store", progress=False)
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("audio", "store"):
        shutil.copytree(tmp_path / name, moved / name)
    shutil.copy(manifest, moved / "m.jsonl")
    assert pack(moved / "m.jsonl", out=moved / "store", progress=False).up_to_date
    # A store packed before rows were known by their hashes is known by where they lay.
    meta = json.loads((tmp_path / "store" / "store.json").read_text())
    meta["manifest_sha256"] = manifest_digest(read_manifest(manifest), 16000, located=True)
    (tmp_path / "store" / "store.json").write_text(json.dumps(meta))
    assert pack(manifest, out=tmp_path / "store", progress=False).up_to_date
    # Without its hash, a row is known by where its file lies: moved, it is packed again.
    rows = [json.loads(line) for line in (moved / "m.jsonl").read_text().splitlines()]
    write_jsonl(moved / "m.jsonl", [{k: v for k, v in r.items() if k != "sha256"} for r in rows])
    pack(moved / "m.jsonl", out=moved / "store", progress=False)
    shutil.move(moved, tmp_path / "again")
    assert not pack(tmp_path / "again" / "m.jsonl", out=tmp_path / "again" / "store",
                    progress=False).up_to_date  # fmt: skip


def test_a_pack_that_decodes_no_clip_keeps_the_store_it_would_replace(
    manifest: Path, tmp_path: Path
):
    pack(manifest, out=tmp_path / "store", progress=False)
    for path in (tmp_path / "audio").iterdir():  # the audio moved away
        path.unlink()
    rows = [json.loads(line) for line in manifest.read_text().splitlines()][:3]
    write_jsonl(manifest, rows)  # a changed manifest, so the store is not up to date
    with pytest.raises(MusicSSLError, match=r"no clip could be decoded \(3 skipped, e.g. "):
        pack(manifest, out=tmp_path / "store", progress=False)
    assert len(SampleStore(tmp_path / "store")) == 7


def test_killed_pack_leaves_no_store_and_resumes(manifest: Path, tmp_path: Path):
    # Many short clips so the pack is still running when it is killed.
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    write_jsonl(manifest, rows * 400)
    store_path = tmp_path / "store"
    script = (
        "import musicssl.pack as s, sys; s._CHECKPOINT_SECONDS = 0.0;"
        f"s.pack({str(manifest)!r}, out={str(store_path)!r}, progress=False)"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    partial = tmp_path / "store.partial"
    deadline = 200
    while deadline and not (partial / "progress.json").exists():
        deadline -= 1
        subprocess.run(["sleep", "0.05"])
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not store_path.exists() or (store_path / "store.json").exists()
    if store_path.exists():
        pytest.skip("the pack finished before it could be killed")
    with pytest.raises(MusicSSLError, match="interrupted"):
        SampleStore(store_path)
    summary = pack(manifest, out=store_path, progress=False)
    assert summary.resumed_from > 0
    store = SampleStore(store_path)
    assert len(store) == 2800 and not partial.exists()
    # The resumed store equals a store packed in one go.
    pack(manifest, out=tmp_path / "fresh", progress=False)
    fresh = SampleStore(tmp_path / "fresh")
    np.testing.assert_array_equal(np.asarray(store.samples), np.asarray(fresh.samples))


def test_store_pickles_without_its_samples(manifest: Path, tmp_path: Path):
    import pickle

    pack(manifest, out=tmp_path / "store", progress=False)
    store = SampleStore(tmp_path / "store")
    _ = store.samples
    copy = pickle.loads(pickle.dumps(store))
    assert copy._samples is None
    np.testing.assert_array_equal(copy.crop(3, 10, 50), store.crop(3, 10, 50))


def test_prefetch_asks_only_for_a_store_that_fits_in_memory(manifest: Path, tmp_path: Path):
    pack(manifest, out=tmp_path / "store", sr=16000, progress=False)
    store = SampleStore(tmp_path / "store")
    before = store.crop(0, 0, 100)
    assert store.prefetch() is hasattr(os, "posix_fadvise")
    assert store.prefetch(max_memory_fraction=0.0) is False
    np.testing.assert_array_equal(store.crop(0, 0, 100), before)


def test_pack_keeps_each_clips_split(tmp_path: Path, write_audio):
    for number in range(4):
        write_audio(
            f"corpus/audio/{number}.wav", tone(300 + 20 * number, sr=8000, seconds=0.25), 8000
        )
    table = tmp_path / "splits.csv"
    table.write_text("path,split\n0.wav,train\n1.wav,valid\n2.wav,test\n3.wav,train\n")
    index_folder(tmp_path / "corpus/audio", out=tmp_path / "m.jsonl", splits=table, progress=False)
    summary = pack(tmp_path / "m.jsonl", out=tmp_path / "store", sr=8000, progress=False)
    assert summary.splits == {"train": 2, "valid": 1, "test": 1}
    assert "splits: train 2, valid 1, test 1" in str(summary)
    rows = [json.loads(line) for line in (tmp_path / "store/clips.jsonl").read_text().splitlines()]
    assert [row["split"] for row in rows] == ["train", "valid", "test", "train"]
    assert [row["split"] for row in SampleStore(tmp_path / "store").rows] == [
        "train",
        "valid",
        "test",
        "train",
    ]


def test_a_pack_killed_before_its_first_checkpoint_starts_afresh(manifest: Path, tmp_path: Path):
    # What a kill leaves before any progress was recorded: the lock and some samples.
    partial = tmp_path / "store.partial"
    partial.mkdir()
    (partial / ".lock").write_bytes(b"")
    (partial / "samples.int16").write_bytes(b"\x01\x02" * 1000)
    summary = pack(manifest, out=tmp_path / "store", progress=False)
    assert summary.resumed_from == 0 and summary.clips == 7
    assert not partial.exists()
    assert sorted(os.listdir(tmp_path / "store")) == [
        "clips.jsonl",
        "offsets.npy",
        "samples.int16",
        "store.json",
    ]


@pytest.mark.parametrize("damage", ["truncate samples", "garbage offsets", "garbage meta"])
def test_a_damaged_store_is_one_line_and_packed_again(manifest: Path, tmp_path: Path, damage):
    store = tmp_path / "store"
    pack(manifest, out=store, progress=False)
    if damage == "truncate samples":
        with open(store / "samples.int16", "r+b") as handle:
            handle.truncate(1000)
    elif damage == "garbage offsets":
        (store / "offsets.npy").write_bytes(b"\x93NUMPY garbage")
    else:
        (store / "store.json").write_text("{not json")
    with pytest.raises(MusicSSLError, match="the store is damaged; run `musicssl data pack`"):
        SampleStore(store)
    if damage != "garbage meta":  # store.json itself is what says a folder is a store
        summary = pack(manifest, out=store, progress=False)
        assert not summary.up_to_date and len(SampleStore(store)) == 7


def test_an_implausible_store_rate_is_refused(manifest: Path, tmp_path: Path):
    with pytest.raises(MusicSSLError, match="--sr 7: not a plausible sample rate"):
        pack(manifest, out=tmp_path / "store", sr=7, progress=False)
    assert not (tmp_path / "store").exists()

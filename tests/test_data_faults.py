"""Bad inputs to the data verbs: each is reported in one line, and no existing file changes."""

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from musicssl import audio
from musicssl.corpus import index_folder
from musicssl.decoder_notes import decoder_notes
from musicssl.errors import AudioError, MusicSSLError
from musicssl.manifest import read_manifest, write_jsonl
from musicssl.pack import pack
from musicssl.store import SampleStore

from conftest import tone

MUSICSSL = [sys.executable, "-m", "musicssl"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a file's mode and hash, a link's target, a folder."""
    found = {}
    for parent, folders, names in os.walk(folder):
        for name in folders + names:
            path = Path(parent) / name
            key = path.relative_to(folder).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                found[key] = f"link to {os.readlink(path)}"
            elif stat.S_ISDIR(info.st_mode):
                found[key] = f"folder {oct(info.st_mode)}"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[key] = f"{oct(info.st_mode)} {digest}"
    return found


def one_line(error: pytest.ExceptionInfo, *words: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


@pytest.fixture
def corpus(tmp_path: Path, write_audio) -> Path:
    """A small corpus folder laid out as the built-in one: audio/ and a manifest with splits."""
    root = tmp_path / "corpus"
    rows = []
    for number, split in enumerate(["train", "train", "valid", "test"]):
        write_audio(
            f"corpus/audio/{number}.wav", tone(200 + 50 * number, sr=8000, seconds=0.5), 8000
        )
        rows.append({"path": f"audio/{number}.wav", "split": split, "style": f"s{number}"})
    write_jsonl(root / "manifest.jsonl", rows)
    return root


def test_pack_into_a_folder_that_is_not_a_store_is_refused(corpus: Path, tmp_path: Path):
    index_folder(corpus / "audio", out=tmp_path / "m.jsonl", progress=False)
    before = snapshot(corpus)
    with pytest.raises(MusicSSLError) as caught:
        pack(corpus / "manifest.jsonl", out=corpus, progress=False)
    one_line(caught, str(corpus), "not a sample store", "audio")
    with pytest.raises(MusicSSLError) as caught:
        pack(tmp_path / "m.jsonl", out=corpus / "manifest.jsonl", progress=False)
    one_line(caught, "manifest.jsonl", "not a sample store")
    assert snapshot(corpus) == before
    # A store with a file of the user's added is not the store's own any more.
    store = tmp_path / "store"
    pack(tmp_path / "m.jsonl", out=store, progress=False)
    (store / "notes.txt").write_text("mine")
    write_jsonl(tmp_path / "two.jsonl", read_manifest(tmp_path / "m.jsonl")[:2])
    before = snapshot(tmp_path)
    with pytest.raises(MusicSSLError) as caught:
        pack(tmp_path / "two.jsonl", out=store, progress=False)
    one_line(caught, "notes.txt")
    assert snapshot(tmp_path) == before


def test_pack_replaces_its_own_store_and_an_empty_folder(corpus: Path, tmp_path: Path):
    index_folder(corpus / "audio", out=tmp_path / "m.jsonl", progress=False)
    store = tmp_path / "store"
    store.mkdir()
    first = pack(tmp_path / "m.jsonl", out=store, progress=False)
    assert first.clips == 4 and "replaced" not in str(first)  # the folder was empty
    write_jsonl(tmp_path / "two.jsonl", read_manifest(tmp_path / "m.jsonl")[:2])
    second = pack(tmp_path / "two.jsonl", out=store, progress=False)
    assert second.clips == 2
    assert str(second).endswith("\nreplaced the store there (4 clips at 16000 Hz)")
    assert len(SampleStore(store)) == 2
    assert sorted(os.listdir(tmp_path)) == [
        "corpus",
        "m.bad.jsonl",
        "m.jsonl",
        "store",
        "two.jsonl",
    ]
    assert sorted(os.listdir(store)) == [
        "clips.jsonl",
        "offsets.npy",
        "samples.int16",
        "store.json",
    ]


def test_a_partial_folder_of_someone_elses_is_left_alone(corpus: Path, tmp_path: Path):
    (tmp_path / "store.partial").mkdir()
    (tmp_path / "store.partial" / "thesis.tex").write_text("keep me")
    before = snapshot(tmp_path)
    with pytest.raises(MusicSSLError) as caught:
        pack(corpus / "manifest.jsonl", out=tmp_path / "store", progress=False)
    one_line(caught, "store.partial", "thesis.tex")
    assert snapshot(tmp_path) == before


def test_zero_length_manifest(tmp_path: Path):
    empty = tmp_path / "m.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(MusicSSLError) as caught:
        pack(empty, out=tmp_path / "store", progress=False)
    one_line(caught, "m.jsonl", "empty manifest")
    assert sorted(os.listdir(tmp_path)) == ["m.jsonl"]
    # Indexing an empty folder is refused, and the empty manifest is left as it was.
    (tmp_path / "nothing").mkdir()
    with pytest.raises(MusicSSLError, match="nothing: no audio files"):
        index_folder(tmp_path / "nothing", out=empty, progress=False)
    assert empty.read_bytes() == b""


def test_index_never_overwrites_a_file_that_is_not_a_manifest(corpus: Path):
    before = snapshot(corpus)
    for target in (corpus / "audio/0.wav", corpus / "audio"):
        with pytest.raises(MusicSSLError) as caught:
            index_folder(corpus / "audio", out=target, progress=False)
        one_line(caught, str(target))
    with pytest.raises(MusicSSLError) as caught:
        index_folder(corpus / "audio", out=corpus / "m.jsonl", bad=corpus / "audio/1.wav")
    one_line(caught, "1.wav", "not a manifest")
    assert snapshot(corpus) == before


def _bad_folder(folder: Path) -> None:
    """Beside a good file: a broken link, a link loop, a text .mp3, a folder named .wav."""
    audio.save(folder / "good.wav", tone(330, sr=8000, seconds=0.5), sr=8000)
    (folder / "broken.wav").symlink_to(folder / "gone.wav")
    (folder / "loop.flac").symlink_to("loop.flac")
    (folder / "text.mp3").write_text("a text file, not an mp3\n")
    (folder / "folder.wav").mkdir()
    audio.save(folder / "folder.wav/inside.wav", tone(400, sr=8000, seconds=0.5), sr=8000)


def test_a_folder_without_audio_is_refused_and_nothing_is_written(tmp_path: Path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no audio here\n")
    with pytest.raises(MusicSSLError, match=r"notes: no audio files .*\.wav .*\.flac"):
        index_folder(folder, out=tmp_path / "manifest.jsonl", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_a_folder_of_bad_files_only_is_refused_with_its_report(tmp_path: Path):
    folder = tmp_path / "music"
    folder.mkdir()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.flac").write_text("not audio")
    with pytest.raises(MusicSSLError) as refused:
        index_folder(folder, out=tmp_path / "m.jsonl", progress=False)
    assert str(refused.value) == (
        f"{folder}: none of its 2 audio files could be read (1 empty file, 1 not audio); why "
        f"each failed: {tmp_path / 'm.bad.jsonl'}"
    )
    assert len(read_manifest(tmp_path / "m.bad.jsonl")) == 2
    assert not (tmp_path / "m.jsonl").exists()


def test_every_per_file_problem_reaches_the_report(tmp_path: Path, write_audio):
    folder = tmp_path / "music"
    folder.mkdir()
    _bad_folder(folder)
    before = snapshot(folder)
    summary = index_folder(folder, out=tmp_path / "m.jsonl", progress=False)
    kept = [row["path"] for row in read_manifest(tmp_path / "m.jsonl")]
    assert kept == ["music/folder.wav/inside.wav", "music/good.wav"]
    bad = {row["path"]: row["reason"] for row in read_manifest(tmp_path / "m.bad.jsonl")}
    assert bad == {
        "music/broken.wav": f"broken symbolic link (to {folder}/gone.wav, which does not exist)",
        "music/loop.flac": "symbolic link loop",
        "music/text.mp3": "not audio (could not recognise the format)",
    }
    assert summary.reasons == {"broken symbolic link": 1, "symbolic link loop": 1, "not audio": 1}
    assert snapshot(folder) == before
    # Re-indexing reports the same, and still decodes nothing twice.
    again = index_folder(folder, out=tmp_path / "m.jsonl", progress=False)
    assert (again.decoded, again.reused, again.skipped) == (0, 3, 3)


def test_a_link_loop_of_folders_is_walked_once(tmp_path: Path, write_audio):
    write_audio("music/a/x.wav", tone(300, sr=8000, seconds=0.5), 8000)
    (tmp_path / "music/a/up").symlink_to("..")
    (tmp_path / "elsewhere").mkdir()
    write_audio("elsewhere/y.wav", tone(350, sr=8000, seconds=0.5), 8000)
    (tmp_path / "music/linked").symlink_to(tmp_path / "elsewhere")
    # A link above the folder would index everything beside it: it is named, not followed.
    write_audio("beside/z.wav", tone(400, sr=8000, seconds=0.5), 8000)
    (tmp_path / "music/a/top").symlink_to(tmp_path)
    index_folder(tmp_path / "music", out=tmp_path / "m.jsonl", progress=False)
    paths = [row["path"] for row in read_manifest(tmp_path / "m.jsonl")]
    assert sorted(paths) == ["elsewhere/y.wav", "music/a/x.wav"]
    bad = [json.loads(line) for line in (tmp_path / "m.bad.jsonl").read_text().splitlines()]
    assert bad == [{"path": "music/a/top", "reason": f"a link to {tmp_path.resolve()}, which "
                    f"holds {tmp_path / 'music'}: not followed out of it"}]  # fmt: skip


def test_a_file_reached_through_a_link_is_kept_once(tmp_path: Path, write_audio):
    # Two paths to one file, in two folders that --split-by parent would split apart.
    write_audio("music/train-side/x.wav", tone(300, sr=8000, seconds=0.5), 8000)
    (tmp_path / "music/test-side").mkdir()
    (tmp_path / "music/test-side/x.wav").symlink_to(tmp_path / "music/train-side/x.wav")
    summary = index_folder(tmp_path / "music", out=tmp_path / "m.jsonl", split_by="parent",
                           progress=False)  # fmt: skip
    assert [row["path"] for row in read_manifest(tmp_path / "m.jsonl")] == ["music/test-side/x.wav"]
    bad = [json.loads(line) for line in (tmp_path / "m.bad.jsonl").read_text().splitlines()]
    assert bad == [{"path": "music/train-side/x.wav", "reason": "the same file as "
                    "music/test-side/x.wav"}]  # fmt: skip
    assert summary.kept == 1 and summary.skipped == 1
    assert summary.reasons == {"paths to a file listed under another": 1}  # counted by kind


def test_a_copy_of_a_file_is_kept_once_under_the_path_indexed_before(tmp_path: Path, write_audio):
    # The same bytes in two folders that --split-by parent would split apart.
    original = write_audio("music/b-train/x.wav", tone(300, sr=8000, seconds=0.5), 8000)
    write_audio("music/b-train/y.wav", tone(350, sr=8000, seconds=0.5), 8000)
    out = tmp_path / "m.jsonl"
    index_folder(tmp_path / "music", out=out, split_by="parent", progress=False)
    (row,) = [row for row in read_manifest(out) if row["path"].endswith("x.wav")]
    assert row["sha256"] == hashlib.sha256(original.read_bytes()).hexdigest()
    # A copy that sorts first, added later: the file runs may have trained on keeps its place.
    (tmp_path / "music/a-test").mkdir()
    shutil.copy(original, tmp_path / "music/a-test/x.wav")
    summary = index_folder(tmp_path / "music", out=out, split_by="parent", progress=False)
    paths = [row["path"] for row in read_manifest(out)]
    assert paths == ["music/b-train/x.wav", "music/b-train/y.wav"]
    bad = [json.loads(line) for line in (tmp_path / "m.bad.jsonl").read_text().splitlines()]
    assert bad == [{"path": "music/a-test/x.wav", "reason": "a copy of music/b-train/x.wav "
                    "(the same bytes)"}]  # fmt: skip
    assert (summary.kept, summary.skipped, summary.decoded) == (2, 1, 1)


def test_a_manifest_without_digests_is_read_again(tmp_path: Path, write_audio):
    write_audio("music/x.wav", tone(300, sr=8000, seconds=0.5), 8000)
    out = tmp_path / "m.jsonl"
    index_folder(tmp_path / "music", out=out, progress=False)
    rows = read_manifest(out)
    write_jsonl(out, [{k: v for k, v in row.items() if k != "sha256"} for row in rows])
    summary = index_folder(tmp_path / "music", out=out, progress=False)
    assert summary.decoded == 1 and read_manifest(out) == rows


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_and_folder_are_reported(tmp_path: Path, write_audio):
    write_audio("music/good.wav", tone(300, sr=8000, seconds=0.5), 8000)
    locked = write_audio("music/locked.wav", tone(300, sr=8000, seconds=0.5), 8000)
    write_audio("music/shut/x.wav", tone(300, sr=8000, seconds=0.5), 8000)
    locked.chmod(0)
    (tmp_path / "music/shut").chmod(0)
    try:
        index_folder(tmp_path / "music", out=tmp_path / "m.jsonl", progress=False)
    finally:
        locked.chmod(0o644)
        (tmp_path / "music/shut").chmod(0o755)
    bad = {row["path"]: row["reason"] for row in read_manifest(tmp_path / "m.bad.jsonl")}
    assert bad == {
        "music/locked.wav": "permission denied",
        "music/shut": "folder not readable: permission denied",
    }


def test_permission_denied_is_said_so(tmp_path: Path, write_audio, monkeypatch):
    # Stands in for chmod 000 where the tests run as root, who may read any file.
    path = write_audio("x.wav", tone(300, sr=8000, seconds=0.5), 8000)
    real_open = open

    def refusing_open(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    with pytest.raises(AudioError) as caught:
        audio.check(path)
    assert caught.value.reason == "permission denied"


def _wav_declaring(path: Path, *, data_bytes: int, fmt_bytes: int = 16) -> None:
    """A 16-bit mono 8 kHz WAV holding 8000 frames whose header declares other sizes."""
    samples = (tone(300, sr=8000, seconds=1.0) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    header = b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE"
    header += b"fmt " + struct.pack("<I", fmt_bytes) + fmt
    path.write_bytes(header + b"data" + struct.pack("<I", data_bytes) + samples)


def test_a_wav_declaring_gigabytes_is_reported_without_allocating_them(tmp_path: Path):
    huge = tmp_path / "music/huge.wav"
    huge.parent.mkdir()
    _wav_declaring(huge, data_bytes=0xFFFFFFF0 - 2)  # about 2 147 483 639 frames
    bad_fmt = tmp_path / "music/bad_fmt.wav"
    _wav_declaring(bad_fmt, data_bytes=16000, fmt_bytes=0xFFFFFFF0)
    tracemalloc.start()
    try:
        with pytest.raises(AudioError, match="truncated: header declares 2147483639 frames"):
            audio.check(huge)
        with pytest.raises(AudioError, match="truncated"):
            audio.load(huge, sr=8000)
        with pytest.raises(AudioError, match="corrupt"):
            audio.check(bad_fmt)
        audio.save(tmp_path / "music/good.wav", tone(330, sr=8000, seconds=0.5), sr=8000)
        summary = index_folder(tmp_path / "music", out=tmp_path / "m.jsonl", progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20
    assert (summary.kept, summary.skipped) == (1, 2)


def _mp3_with_damage(path: Path) -> None:
    signal = tone(440, sr=16000, seconds=2.0)
    audio.save(path.with_suffix(".tmp.mp3"), signal, sr=16000, subtype="MPEG_LAYER_III")
    data = path.with_suffix(".tmp.mp3").read_bytes()
    path.with_suffix(".tmp.mp3").unlink()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes(range(7, 251)) * 8 + data[middle:])


def test_decoder_notes_stay_out_of_the_terminal(tmp_path: Path, capfd):
    (tmp_path / "music").mkdir()
    _mp3_with_damage(tmp_path / "music/damaged.mp3")
    with pytest.raises(MusicSSLError, match="none of its 1 audio file could be read"):
        index_folder(tmp_path / "music", out=tmp_path / "m.jsonl", progress=False)
    printed = capfd.readouterr()
    assert "MPEG" not in printed.err and "resync" not in printed.err
    (row,) = [json.loads(line) for line in (tmp_path / "m.bad.jsonl").read_text().splitlines()]
    # In our words: libsndfile's own ("does not exist ... possibly a pipe?") are wrong here.
    assert row["reason"].startswith("corrupt") and "pipe" not in row["reason"]
    with decoder_notes() as notes:
        os.write(2, b"Note: a decoder speaks\n")
        import warnings

        warnings.warn("a decoder warns", UserWarning, stacklevel=1)
        print("to the console", file=notes.console)
    printed = capfd.readouterr()
    assert notes.lines == ["Note: a decoder speaks", "UserWarning: a decoder warns"]
    assert printed.err == "to the console\n"


def test_two_packs_into_one_store_at_once(corpus: Path, tmp_path: Path):
    rows = read_manifest(corpus / "manifest.jsonl")
    write_jsonl(
        tmp_path / "m.jsonl", [{**row, "path": f"corpus/{row['path']}"} for row in rows] * 150
    )
    store = tmp_path / "store"
    script = (
        "import sys, musicssl.pack as s\n"
        "from musicssl.errors import MusicSSLError\n"
        "s._CHECKPOINT_SECONDS = 0.0\n"
        "try:\n"
        f"    print(s.pack({str(tmp_path / 'm.jsonl')!r}, out={str(store)!r}, progress=False))\n"
        "except MusicSSLError as error:\n"
        "    print(error, file=sys.stderr); sys.exit(1)\n"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(*child.communicate(), child.returncode) for child in children]
    for _, err, code in results:
        assert "Traceback" not in err
        if code:
            assert err.strip().endswith("wait for it to finish") and err.count("\n") == 1, err
    assert any(code == 0 for _, _, code in results)
    assert sorted(os.listdir(tmp_path)) == ["corpus", "m.jsonl", "store"]
    packed = SampleStore(store)
    assert len(packed) == 600
    pack(tmp_path / "m.jsonl", out=tmp_path / "fresh", progress=False)
    np.testing.assert_array_equal(
        np.asarray(packed.samples), np.asarray(SampleStore(tmp_path / "fresh").samples)
    )


def test_command_line_refuses_in_one_line_and_keeps_the_folder(corpus: Path, tmp_path: Path):
    before = snapshot(corpus)
    done = subprocess.run(
        [*MUSICSSL, "data", "pack", str(corpus / "manifest.jsonl"), "--out", str(corpus)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(corpus) in lines[0] and "not a sample store" in lines[0]
    assert snapshot(corpus) == before


def test_command_line_index_reports_bad_files_and_carries_splits(
    corpus: Path, tmp_path: Path, write_audio
):
    _bad_folder(corpus / "audio")
    before = snapshot(corpus)
    done = subprocess.run(
        [*MUSICSSL, "data", "index", str(corpus / "audio"), "--out", str(tmp_path / "m.jsonl")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    # The manifest beside the folder gives its files' splits; files it does not list have none.
    assert "splits: train 2, valid 1, test 1, 2 with no split" in done.stdout
    assert "3 skipped" in done.stdout or "skipped 3 bad files" in done.stdout
    assert snapshot(corpus) == before
    rows = {Path(row["path"]).name: row.get("split") for row in read_manifest(tmp_path / "m.jsonl")}
    assert rows == {
        "0.wav": "train",
        "1.wav": "train",
        "2.wav": "valid",
        "3.wav": "test",
        "good.wav": None,
        "inside.wav": None,
    }
    json.dumps(rows)


def test_pack_skips_a_file_changed_since_it_was_indexed(tmp_path: Path, write_audio):
    for name, frequency in (("a", 300), ("b", 350), ("c", 400)):
        write_audio(f"music/{name}.wav", tone(frequency, sr=8000, seconds=1.0), 8000)
    (tmp_path / "music/empty.wav").write_bytes(b"")
    index_folder(tmp_path / "music", out=tmp_path / "m.jsonl", progress=False)
    write_audio("music/b.wav", tone(500, sr=8000, seconds=0.5), 8000)  # another size
    changed = bytearray((tmp_path / "music/c.wav").read_bytes())
    changed[-2:] = b"\x01\x02"  # the same size, other bytes
    (tmp_path / "music/c.wav").write_bytes(bytes(changed))
    os.utime(tmp_path / "music/a.wav", (1, 1))  # touched (or copied), the same bytes
    summary = pack(tmp_path / "m.jsonl", out=tmp_path / "store", sr=8000, progress=False)
    assert summary.clips == 1 and SampleStore(tmp_path / "store").rows[0]["path"] == "music/a.wav"
    reason = "changed since it was indexed; run musicssl data index again"
    assert summary.skipped == [
        {"path": "music/b.wav", "reason": reason},
        {"path": "music/c.wav", "reason": reason},
    ]
    # The report of skipped files is not a manifest.
    with pytest.raises(MusicSSLError, match="m.bad.jsonl: a report of skipped files"):
        pack(tmp_path / "m.bad.jsonl", out=tmp_path / "other", sr=8000, progress=False)
    assert not (tmp_path / "other").exists()


def test_index_says_when_a_split_gets_no_file(tmp_path: Path, write_audio):
    for number in range(3):
        write_audio(f"music/{number}.wav", tone(300 + 50 * number, sr=8000, seconds=0.5), 8000)
    # One folder: one group, so every file lands in one split.
    summary = index_folder(tmp_path / "music", out=tmp_path / "m.jsonl", split_by="parent",
                           progress=False)  # fmt: skip
    (split,) = summary.splits
    others = [name for name in ("train", "valid", "test") if name != split]
    assert f"note: no file in {' or '.join(others)}: too few groups" in str(summary)
    plain = index_folder(tmp_path / "music", out=tmp_path / "n.jsonl", progress=False)
    assert "note:" not in str(plain)  # no splits asked for: nothing to say about them
    by_file = index_folder(tmp_path / "music", out=tmp_path / "f.jsonl", split_by="file",
                           progress=False)  # fmt: skip
    assert len(by_file.splits) < 3  # three files: their hashes give no file to valid
    assert "these files are too few; give each file its split in a table" in str(by_file)
    # A table that splits every file found, and lists two that are not there.
    table = tmp_path / "splits.csv"
    table.write_text("path,split\nmusic/0.wav,train\nmusic/1.wav,test\nmusic/2.wav,train\n"
                     "music/gone.wav,valid\nelsewhere/3.wav,valid\n")  # fmt: skip
    tabled = index_folder(tmp_path / "music", out=tmp_path / "t.jsonl", splits=table,
                          progress=False)  # fmt: skip
    assert tabled.splits == {"train": 2, "test": 1}
    assert tabled.split_notes == [
        f"note: no file in valid: {table} puts none of the files found there",
        f"note: 2 rows of {table} name no file found under {tmp_path / 'music'}: music/gone.wav, "
        f"elsewhere/3.wav (a row's path is relative to the table's folder or to "
        f"{tmp_path / 'music'})",
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="a file system that takes any bytes")
def test_a_name_that_is_not_utf8_is_a_bad_file_in_index_and_embed(tmp_path: Path, write_audio):
    from musicssl.encoders import SampleCNN

    from conftest import untrained_run

    good = write_audio("music/ok.wav", tone(440.0, sr=16000, seconds=1.0), 16000)
    latin1 = os.fsencode(tmp_path / "music") + b"/caf\xe9.wav"  # an old Latin-1 rip's name
    shutil.copy(good, latin1)
    index = [
        *MUSICSSL,
        "data",
        "index",
        str(tmp_path / "music"),
        "--out",
        str(tmp_path / "m.jsonl"),
    ]
    done = subprocess.run(index, capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "bad files (1 name not UTF-8)" in done.stdout
    (bad,) = read_manifest(tmp_path / "m.bad.jsonl")  # the name reads back as it is on disk
    assert os.fsencode(bad["path"]).endswith(b"caf\xe9.wav")
    assert bad["reason"].startswith("name not UTF-8")
    assert [Path(row["path"]).name for row in read_manifest(tmp_path / "m.jsonl")] == ["ok.wav"]

    run = untrained_run(tmp_path / "run", SampleCNN(num_blocks=4, channels=[4] * 6), "sample_cnn")
    embed = [
        *MUSICSSL,
        "embed",
        str(run),
        str(tmp_path / "music"),
        "--out",
        str(tmp_path / "e.npz"),
    ]
    done = subprocess.run(embed, capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "skipped caf\\udce9.wav: name not UTF-8" in done.stdout + done.stderr
    assert list(np.load(tmp_path / "e.npz")["names"]) == ["ok.wav"]


def test_a_table_finds_a_name_spelt_in_the_other_unicode_form(tmp_path: Path, write_audio):
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "Café.wav")  # as macOS writes it
    write_audio(f"music/{decomposed}", tone(300, sr=8000, seconds=0.5), 8000)
    write_audio("music/plain.wav", tone(400, sr=8000, seconds=0.5), 8000)
    table = tmp_path / "splits.csv"
    composed = unicodedata.normalize("NFC", "Café.wav")  # as a table typed elsewhere has it
    table.write_text(f"path,split\nmusic/{composed},test\nmusic/plain.wav,train\n")
    summary = index_folder(tmp_path / "music", out=tmp_path / "m.jsonl", splits=table,
                           progress=False)  # fmt: skip
    assert summary.splits == {"train": 1, "test": 1} and summary.split_notes == [
        f"note: no file in valid: {table} puts none of the files found there"
    ]

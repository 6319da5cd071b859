import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from musicssl.corpus import index_folder
from musicssl.errors import MusicSSLError
from musicssl.pack import pack
from musicssl.sampling import TwoCrops, pcm_to_float, training_indices
from musicssl.store import SampleStore


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SampleStore:
    import soundfile as sf

    root = tmp_path_factory.mktemp("sampling")
    (root / "audio").mkdir()
    for number in range(10):
        # A ramp makes a crop's offset readable from its first sample.
        ramp = (np.arange(8000 + 500 * number) % 32768).astype(np.int16)
        sf.write(str(root / f"audio/{number}.wav"), ramp, 8000, subtype="PCM_16")
    index_folder(root / "audio", out=root / "m.jsonl", progress=False)
    pack(root / "m.jsonl", out=root / "store", sr=8000, progress=False)
    return SampleStore(root / "store")


def _offset(crop: torch.Tensor) -> int:
    return int(crop[0])


def test_two_crops_are_slices_of_one_clip_at_different_offsets(store: SampleStore):
    dataset = TwoCrops(store, num_samples=2000, seed=0)
    offsets = []
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["index"] == index
        assert item["x_a"].shape == item["x_b"].shape == (2000,)
        for crop in (item["x_a"], item["x_b"]):
            start = _offset(crop)
            assert 0 <= start <= store.num_samples(index) - 2000
            assert crop.dtype == torch.int16
            np.testing.assert_array_equal(
                pcm_to_float(crop).numpy(), store.crop(index, start, 2000)
            )
        offsets.append((_offset(item["x_a"]), _offset(item["x_b"])))
    assert sum(a != b for a, b in offsets) >= 9


def test_same_seed_same_views_new_epoch_new_views(store: SampleStore):
    first = TwoCrops(store, num_samples=2000, seed=3)
    second = TwoCrops(store, num_samples=2000, seed=3)
    assert torch.equal(first[4]["x_a"], second[4]["x_a"])
    second.set_epoch(1)
    assert not torch.equal(first[4]["x_a"], second[4]["x_a"])
    assert not torch.equal(first[4]["x_a"], TwoCrops(store, num_samples=2000, seed=4)[4]["x_a"])


def test_batches_do_not_depend_on_the_number_of_workers(store: SampleStore):
    dataset = TwoCrops(store, num_samples=1000, seed=7)

    def batches(workers: int) -> list[torch.Tensor]:
        loader = DataLoader(
            dataset,
            batch_size=4,
            num_workers=workers,
            generator=torch.Generator().manual_seed(0),
            shuffle=True,
        )
        return [torch.cat([batch["x_a"], batch["x_b"]]) for batch in loader]

    single, several = batches(0), batches(2)
    assert len(single) == len(several) == 3
    for a, b in zip(single, several):
        assert torch.equal(a, b)


def test_short_clip_is_padded_and_bad_length_rejected(store: SampleStore):
    item = TwoCrops(store, num_samples=20000)[0]
    assert item["x_a"].shape == (20000,)
    assert not item["x_a"][8000:].any()
    with pytest.raises(MusicSSLError):
        TwoCrops(store, num_samples=0)


def test_training_indices_keep_the_listed_splits():
    rows = [{"split": "train"}, {"split": "test"}, {}, {"split": "train"}, {"split": "valid"}]
    assert training_indices(rows) == [0, 3]
    assert training_indices(rows, splits=("train", "valid")) == [0, 3, 4]
    assert training_indices(rows, splits="test") == [1]
    with pytest.raises(MusicSSLError, match=r"m.jsonl: no clip in split unlabelled \(it holds "):
        training_indices(rows, splits=("unlabelled",), source="m.jsonl")


def test_training_indices_refuse_a_store_without_splits(store: SampleStore):
    with pytest.raises(MusicSSLError) as caught:
        training_indices(store)
    message = str(caught.value)
    assert message.startswith(f"{store.path}: no clip has a 'split'")
    assert "--split-by" in message and "\n" not in message
    with pytest.raises(MusicSSLError, match="holds no clips"):
        training_indices([])


def test_a_long_clip_is_one_item_per_part_its_two_crops_within_it(store: SampleStore, monkeypatch):
    from musicssl import sampling

    assert TwoCrops(store, num_samples=1000).items == [(i, 0) for i in range(10)]  # 1-2 s each
    monkeypatch.setattr(sampling, "PART_SECONDS", 0.5)  # parts of 4,000 samples at 8 kHz
    dataset = TwoCrops(store, num_samples=1000, seed=0)
    parts = {i: store.num_samples(i) // 4000 for i in range(10)}  # 2 or 3: 8,000-12,500 samples
    assert dataset.items == [(i, p) for i in range(10) for p in range(parts[i])]
    starts = set()
    for position, (index, part) in enumerate(dataset.items):
        end = store.num_samples(index) if part == parts[index] - 1 else (part + 1) * 4000
        for epoch in range(4):
            item = dataset[(epoch, position)]
            assert item["index"] == index
            for crop in (item["x_a"], item["x_b"]):
                assert part * 4000 <= _offset(crop) <= end - 1000  # the last part: the rest
                starts.add((index, _offset(crop)))
    assert len(starts) > 3 * len(dataset.items)  # offsets drawn anew, not one per part

from pathlib import Path

import pytest

from musicssl.errors import MusicSSLError
from musicssl.recipe import Recipe

RECIPE = """
size: cpu
encoder: {name: sample_cnn, options: {num_blocks: 9}}
method: {name: simclr, options: {temperature: 0.5}}
augment: {name: clmr, options: {}}
train: {steps: 1000, batch_size: 48}
sizes:
  cpu:
    encoder: {options: {num_blocks: 8}}
    train: {steps: 300}
  full:
    train: {steps: 100000, precision: bf16-mixed}
"""


@pytest.fixture
def recipe_path(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    return path


def test_size_then_overrides_are_applied(recipe_path: Path):
    recipe = Recipe.load(recipe_path)
    assert recipe.size == "cpu"
    assert recipe.encoder.options == {"num_blocks": 8}
    assert (recipe.train.steps, recipe.train.batch_size) == (300, 48)
    full = Recipe.load(recipe_path, ["size=full", "train.batch_size=96", "optim.lr=1e-3"])
    assert full.size == "full" and full.encoder.options == {"num_blocks": 9}
    assert (full.train.steps, full.train.batch_size, full.train.precision) == (
        100000,
        96,
        "bf16-mixed",
    )
    assert full.optim.lr == pytest.approx(1e-3)


def test_saved_recipe_loads_back_equal(recipe_path: Path, tmp_path: Path):
    recipe = Recipe.load(recipe_path, ["method.options.temperature=0.2"])
    (tmp_path / "resolved.yaml").write_text(recipe.dump())
    assert Recipe.load(tmp_path / "resolved.yaml") == recipe


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.stepz=3", "unknown keys in 'train'"),
        ("train.precision=fp8", "precision"),
        ("size=huge", "unknown size"),
        ("train.steps", "not key=value"),
        ("train.batch_size=1", "batch_size"),
    ],
)
def test_bad_settings_name_the_file_and_the_key(recipe_path: Path, override, message):
    with pytest.raises(MusicSSLError, match=message) as caught:
        Recipe.load(recipe_path, [override])
    assert "r.yaml" in str(caught.value) or "not key=value" in str(caught.value)


def test_shipped_recipes_load_in_every_size():
    folder = Path(__file__).parent.parent / "recipes"
    import yaml

    paths = sorted(folder.glob("*.yaml"))
    assert len(paths) >= 4
    for path in paths:
        for size in yaml.safe_load(path.read_text())["sizes"]:
            Recipe.load(path, [f"size={size}"])


def test_a_size_that_swaps_the_encoder_takes_none_of_the_old_options(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "encoder: {name: sample_cnn, options: {num_blocks: 9, sample_rate: 22050}}\n"
        "method: {name: simclr, options: {temperature: 0.5}}\n"
        "augment: {name: none}\n"
        "sizes:\n"
        "  small:\n"
        "    encoder: {name: short_chunk_cnn, options: {channels: 16}}\n"
        "    method: {options: {temperature: 0.2}}\n"
    )
    recipe = Recipe.load(path, ["size=small"])
    assert recipe.encoder.name == "short_chunk_cnn"
    assert recipe.encoder.options == {"channels": 16}
    assert recipe.method.options == {"temperature": 0.2}  # same part: merged as before

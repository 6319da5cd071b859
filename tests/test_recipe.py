import re
from pathlib import Path

import pytest
import yaml

from musicssl.errors import MusicSSLError
from musicssl.recipe import RECIPES, Recipe, packaged_recipes, recipe_path
from musicssl.train import build_parts

BASE = """\
# A base setup: SimCLR on a small SampleCNN.
encoder: {name: sample_cnn, options: {num_blocks: 9, sample_rate: 22050}}
method: {name: simclr, options: {temperature: 0.5}}
augment: {name: clmr, options: {}}
train: {steps: 1000, batch_size: 48, compile: false}
"""

CHILD = """\
# A child: another encoder, its own train steps, the base's batch size.
base: base
encoder: {name: short_chunk_cnn, options: {channels: 16}}
train: {steps: 300}
"""


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "child.yaml").write_text(CHILD)
    return tmp_path


def test_a_child_replaces_parts_whole_and_settings_field_by_field(recipes: Path):
    child = Recipe.load(recipes / "child.yaml")
    assert (
        child.description == "A child: another encoder, its own train steps, the base's batch size."
    )
    # The encoder is the child's alone: none of the base encoder's options leak into it.
    assert (child.encoder.name, child.encoder.options) == ("short_chunk_cnn", {"channels": 16})
    assert child.method.options == {"temperature": 0.5}
    assert (child.train.steps, child.train.batch_size) == (300, 48)


def test_a_base_with_a_base_is_refused(recipes: Path):
    (recipes / "grandchild.yaml").write_text("base: child\n")
    with pytest.raises(MusicSSLError, match="cannot name a base of its own"):
        Recipe.load(recipes / "grandchild.yaml")


def test_saved_recipe_loads_back_equal(recipes: Path, tmp_path: Path):
    recipe = Recipe.load(recipes / "child.yaml", ["method.options.temperature=0.2"])
    (tmp_path / "resolved.yaml").write_text(recipe.dump())
    assert Recipe.load(tmp_path / "resolved.yaml") == recipe


@pytest.mark.parametrize(
    ("override", "value"),
    [
        ("train.steps=1e3", 1000),
        ("train.steps=250", 250),
        ("train.batch_size=1e2", 100),
        ("optim.lr=1e-3", 1e-3),
        ("optim.lr=2", 2.0),
        ("train.compile=true", True),
        ("train.compile=False", False),
        ("train.minutes=null", None),
        ("train.minutes=2.5", 2.5),
        ("train.devices=2", "2"),
        ("method.options.temperature=0.1", 0.1),
        ("encoder.options.channels=[8, 16]", [8, 16]),
        ("encoder.options.branches.key.layers=[-2, -1]", [-2, -1]),
        ("encoder.options.branches.timbre.options.channels=32", 32),
    ],
)
def test_overrides_are_typed_by_the_field_they_set(recipes: Path, override, value):
    recipe = Recipe.load(recipes / "child.yaml", [override])
    key, _ = override.split("=")
    node = recipe
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    assert node == value and type(node) is type(value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.steps=3.5", "train.steps must be a whole number, got '3.5'"),
        ("train.compile=maybe", "train.compile must be true or false, got 'maybe'"),
        ("train.compile=yes", "train.compile must be true or false"),
        ("optim.lr=fast", "optim.lr must be a number, got 'fast'"),
        ("train.stepz=3", "unknown keys in 'train'"),
        ("train.precision=fp8", "precision"),
        ("size=full", "recipes have no sizes"),
        ("train.steps", "not key=value"),
        ("train.batch_size=1", "batch_size"),
    ],
)
def test_bad_settings_name_the_file_and_the_key(recipes: Path, override, message):
    with pytest.raises(MusicSSLError, match=message.replace("[", r"\[")) as caught:
        Recipe.load(recipes / "child.yaml", [override])
    assert "child.yaml" in str(caught.value) or "=" in str(caught.value)


def test_part_options_a_constructor_does_not_take_are_refused_before_building(recipes: Path):
    recipe = Recipe.load(recipes / "child.yaml", ["method.options.temprature=0.1"])
    with pytest.raises(MusicSSLError, match="simclr takes no option 'temprature'"):
        build_parts(recipe)
    with pytest.raises(MusicSSLError, match="short_chunk_cnn takes no option 'chanels'"):
        build_parts(Recipe.load(recipes / "child.yaml", ["encoder.options.chanels=8"]))


def test_every_packaged_recipe_says_what_it_trains_and_builds():
    names = packaged_recipes()
    assert {"clmr", "simclr-shortchunk-cpu"} <= set(names)
    for name, description in names.items():
        raw = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
        recipe = Recipe.load(recipe_path(name))
        assert description and recipe.description == description
        # The name's first word is the method (or what it estimates), and the first line says it.
        first = name.split("-")[0]
        if recipe.method.name == "combined":  # every term's method or branch is named
            words = set(name.split("-"))
            for branch, term in recipe.method.options["terms"].items():
                assert {branch, term["method"]} & words, (name, branch)
        else:
            assert first == recipe.method.name.split("_")[0] or first in ("clmr", "key"), name
        assert first in re.sub(r"[^a-z]", "", description.lower()), (name, description)
        assert ("cpu" in name) == (recipe.train.accelerator != "cuda"), name
        assert "sizes" not in raw and "size" not in raw
        build_parts(recipe)


def test_clmr_trains_clmr_on_raw_waveforms():
    recipe = Recipe.load(recipe_path("clmr"))
    assert (recipe.encoder.name, recipe.method.name) == ("sample_cnn", "simclr")
    assert recipe.encoder.options["sample_rate"] == 22050
    assert recipe.method.options["temperature"] == 0.5

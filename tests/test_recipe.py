import dataclasses
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


def test_a_child_part_without_a_name_changes_only_the_options_it_lists(recipes: Path):
    (recipes / "tuned.yaml").write_text(
        "base: base\nencoder: {options: {sample_rate: 16000}}\nmethod: {options: {}}\n"
    )
    tuned = Recipe.load(recipes / "tuned.yaml")
    assert tuned.encoder.name == "sample_cnn"
    assert tuned.encoder.options == {"num_blocks": 9, "sample_rate": 16000}
    assert (tuned.method.name, tuned.method.options) == ("simclr", {"temperature": 0.5})


def test_a_base_named_as_a_file_is_read_beside_the_recipe(
    recipes: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # not the recipes' folder
    (recipes / "by_file.yaml").write_text("base: base.yaml\ntrain: {steps: 7}\n")
    assert Recipe.load(recipes / "by_file.yaml").encoder.name == "sample_cnn"
    (recipes / "missing.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(MusicSSLError, match=r"missing.yaml: its base: no recipe file .*nowhere"):
        Recipe.load(recipes / "missing.yaml")


def test_a_packaged_recipe_loads_by_its_name_from_python():
    assert Recipe.load("simclr-shortchunk-cpu", ["train.steps=3"]).train.steps == 3


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
        ("method.options={}", {}),
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
        ("train.steps=abc", "train.steps must be a whole number, got 'abc'"),
        ("train.compile=maybe", "train.compile must be true or false, got 'maybe'"),
        ("train.compile=yes", "train.compile must be true or false"),
        ("optim.lr=fast", "optim.lr must be a number, got 'fast'"),
        ("optim.lr=-1", "optim.lr must be > 0 and finite, got -1.0"),
        ("train.seed=-1", "train.seed must be from 0 to 2**63 - 1, got -1"),
        ("train.stepz=3", "unknown key 'stepz' in 'train' (known: accelerator, accumulate, "),
        ("trian.steps=3", "unknown key 'trian' in the recipe (known: augment, data, "),
        ("train.steps.x=3", "'steps' is not a section"),
        ("train.precision=fp8", "precision"),
        ("train.accelerator=foo", "train.accelerator must be one of ('auto', 'cpu', "),
        ("train.devices=abc", "train.devices must be auto or a number of processes > 0"),
        ("train.devices=0", "train.devices must be auto or a number of processes > 0"),
        ("train.strategy=foo", "train.strategy must be one of ('auto', 'ddp', 'fsdp')"),
        ("size=full", "recipes have no sizes"),
        ("train.steps", "is not key=value"),
        ("train.batch_size=1", "batch_size"),
    ],
)
def test_bad_overrides_name_the_override_not_the_file(recipes: Path, override, message):
    with pytest.raises(MusicSSLError) as caught:
        Recipe.load(recipes / "child.yaml", ["train.steps=20", override])
    error = str(caught.value)
    assert error.startswith(f"override {override}") and message in error
    assert "child.yaml" not in error and "\n" not in error


def test_one_override_string_and_a_mapping_of_overrides_read_as_a_list_does(recipes: Path):
    listed = Recipe.load(recipes / "child.yaml", ["train.steps=7", "optim.lr=0.5"])
    alone = Recipe.load(recipes / "child.yaml", "train.steps=7")
    mapped = Recipe.load(recipes / "child.yaml", {"train.steps": 7, "optim.lr": 0.5})
    assert alone.train.steps == mapped.train.steps == listed.train.steps == 7
    assert mapped.optim.lr == listed.optim.lr == 0.5
    with pytest.raises(MusicSSLError, match="override train.steps=3.5: train.steps must be a "):
        Recipe.load(recipes / "child.yaml", {"train.steps": 3.5})
    # A nested mapping sets its leaves and keeps the rest of the section.
    nested = Recipe.load(recipes / "child.yaml", {"train": {"steps": 7}, "optim": {"lr": 0.5}})
    assert nested == listed
    packaged = Recipe.load("simclr-shortchunk-cpu")
    assert (packaged.train.batch_size, packaged.train.minutes) != (48, None)  # not defaults
    merged = Recipe.load("simclr-shortchunk-cpu", {"train": {"steps": 7}})
    assert merged.train == dataclasses.replace(packaged.train, steps=7)
    with pytest.raises(MusicSSLError, match=r"^overrides must be key=value strings or a mapping"):
        Recipe.load(recipes / "child.yaml", 10)  # type: ignore[arg-type]


def test_bad_settings_in_the_file_name_the_file(recipes: Path):
    (recipes / "bad.yaml").write_text("base: base\ntrain: {steps: abc}\n")
    with pytest.raises(MusicSSLError) as caught:
        Recipe.load(recipes / "bad.yaml", ["optim.lr=0.1"])
    assert str(caught.value) == (
        f"{recipes / 'bad.yaml'}: train.steps must be a whole number, got 'abc'"
    )
    (recipes / "typo.yaml").write_text("base: base\ntrain: {stpes: 5}\n")
    with pytest.raises(MusicSSLError, match=r"typo\.yaml: unknown key 'stpes' in 'train'"):
        Recipe.load(recipes / "typo.yaml", ["train.steps=5"])


def test_an_override_may_mend_the_file_or_an_earlier_override(recipes: Path):
    (recipes / "bad.yaml").write_text("base: base\ntrain: {steps: abc}\n")
    assert Recipe.load(recipes / "bad.yaml", ["train.steps=5"]).train.steps == 5
    assert Recipe.load(recipes / "child.yaml", ["optim.lr=-1", "optim.lr=0.1"]).optim.lr == 0.1


def test_part_options_a_constructor_does_not_take_are_refused_before_building(recipes: Path):
    recipe = Recipe.load(recipes / "child.yaml", ["method.options.temprature=0.1"])
    with pytest.raises(MusicSSLError, match="simclr takes no option 'temprature'") as caught:
        build_parts(recipe)
    assert str(caught.value).endswith("; did you mean 'temperature'?")
    with pytest.raises(MusicSSLError, match="short_chunk_cnn takes no option 'chanels'"):
        build_parts(Recipe.load(recipes / "child.yaml", ["encoder.options.chanels=8"]))


@pytest.mark.parametrize(
    ("recipe", "override", "message"),
    [
        ("child", "method.options.temperature=abc",
         "method.options.temperature must be a number, got 'abc'"),
        ("child", "encoder.options.channels=2.5",
         "encoder.options.channels must be a whole number, got 2.5"),
        ("child", "augment.options.p_noise=abc",
         "augment.options.p_noise must be a number, got 'abc'"),
        ("child", "augment.options.pitch_kind=[tape]",
         "augment.options.pitch_kind must be a string, got ['tape']"),
        ("mae-vit-cpu", "method.options.mask_ratio=null",
         "method.options.mask_ratio must be a number, got None"),
        ("mae-vit-cpu", "method.options.normalise_targets=maybe",
         "method.options.normalise_targets must be true or false, got 'maybe'"),
        ("mae-vit-cpu", "method.options.noise_snr_db=30",
         "method.options.noise_snr_db must be a list of numbers or null, got 30"),
        ("mae-vit-cpu", "method.options.noise_snr_db=[a, b]",
         "method.options.noise_snr_db must be a list of numbers or null, got ['a', 'b']"),
        ("mae-vit-cpu", "encoder.options.patch=[12]",
         "encoder.options.patch must be a list of 2 whole numbers, got [12]"),
        ("mae-vit-cpu", "encoder.options.width=abc",
         "encoder.options.width must be a whole number, got 'abc'"),
        ("bestrq-vit-cpu", "method.options.codebook_size=2.5",
         "method.options.codebook_size must be a whole number, got 2.5"),
        ("mae-vit-cpu", "augment.options.p_noise=0.1",
         "augment.options.p_noise: chain none takes no option 'p_noise' (it takes none)"),
    ],
)  # fmt: skip
def test_part_options_of_the_wrong_type_are_refused_in_one_line_before_building(
    recipes: Path, monkeypatch, recipe, override, message
):
    path = recipes / "child.yaml" if recipe == "child" else recipe_path(recipe)
    loaded = Recipe.load(path, [override])
    monkeypatch.setattr("musicssl.train.build_encoder", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(MusicSSLError) as caught:
        build_parts(loaded)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "override, start",
    [
        ("method.options.codebook_size=1", "method.options: bestrq: codebook_size must be >= 2"),
        ("encoder.options.depth=0", "encoder.options: SpectrogramViT: need depth >= 1"),
        ("method.options.reconstruct_weight=-1",
         "method.options.reconstruct_weight: a loss weight must be >= 0 and finite, got -1.0"),
        ("method.options.reconstruct_weight=nan",
         "method.options.reconstruct_weight: a loss weight must be >= 0"),
    ],
)  # fmt: skip
def test_a_part_option_out_of_range_is_told_under_its_section(override, start):
    with pytest.raises(MusicSSLError) as caught:
        build_parts(Recipe.load(recipe_path("bestrq-vit-cpu"), [override]))
    assert str(caught.value).startswith(start)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.weight_decay=-1", "optim.weight_decay must be >= 0 and finite, got -1.0"),
        ("optim.lr=inf", "optim.lr must be > 0 and finite, got inf"),
        ("data.splits=train,vaild", "(e.g. train,valid), or all; got 'train,vaild'"),
        ("method.options.temperature=0",
         "method.options.temperature: a temperature must be > 0 and finite, got 0.0"),
    ],
)  # fmt: skip
def test_optimiser_values_splits_and_temperatures_out_of_range_are_one_line(override, message):
    with pytest.raises(MusicSSLError) as caught:
        build_parts(Recipe.load(recipe_path("simclr-shortchunk-cpu"), [override]))
    assert str(caught.value).endswith(message)


def test_part_options_are_read_as_the_types_they_set(recipes: Path):
    overrides = ["method.options.temperature=1", "encoder.options.channels=1.6e1"]
    parts = build_parts(Recipe.load(recipes / "child.yaml", overrides))
    assert parts.method.temperature == 1.0 and type(parts.method.temperature) is float
    assert parts.encoder.config()["channels"] == 16


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


def test_numbers_in_scientific_notation_are_numbers_where_no_type_says_so(tmp_path):
    from musicssl.recipe_files import Text, read, untyped

    # YAML 1.1 (PyYAML) reads 1e-3 as text; an option of no declared type must get a number.
    assert [untyped(Text(text)) for text in ("1e-3", "-2E+5", ".5e1", "1.0e-3")] == [
        0.001, -200000.0, 5.0, 0.001,
    ]  # fmt: skip
    assert [untyped(Text(text)) for text in ("e5", "1e", "abc", "3")] == ["e5", "1e", "abc", 3]
    path = tmp_path / "r.yaml"
    path.write_text("method: {name: mine, options: {scale: 1e-3, steps: 1e3}}\n")
    assert read(path)["method"]["options"] == {"scale": 0.001, "steps": 1000.0}

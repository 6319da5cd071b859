"""The musicssl command: every verb's options reach its library function, defaults come from it."""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from musicssl import cli
from musicssl.cli import build_parser, main
from musicssl.cli_options import Default


@pytest.fixture(autouse=True)
def no_process_settings(monkeypatch):
    # main() flushes subnormal floats for the whole process: not inside the test session.
    monkeypatch.setattr(cli, "configure_torch", lambda: True)


def verb_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(words, parser) of every leaf verb: ("data", "pack"), ("embed",), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from verb_parsers(sub, (*prefix, name))
            return
    yield prefix, parser


def test_help_lists_every_verb_and_a_typical_path_that_keeps_the_test_split_out():
    result = subprocess.run(
        [sys.executable, "-m", "musicssl", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for verb in ("corpus", "data", "pretrain", "embed", "evaluate", "compare", "demo"):
        assert f"    {verb} " in result.stdout
    path = [line.split("#")[0] for line in result.stdout.splitlines() if "  musicssl " in line]
    # The store is packed from the corpus's manifest, whose rows carry their splits (and
    # labels): the built-in corpus's tests check that every clip has one.
    pack = next(line for line in path if " data pack " in line)
    assert "/manifest.jsonl --out data/store" in pack
    assert any(" pretrain " in line and "data.store=" in line for line in path)


def test_every_verb_is_there_and_every_default_is_read_from_the_library(capsys):
    verbs = dict(verb_parsers(build_parser()))
    assert set(verbs) == {
        ("corpus", "build"),
        ("data", "index"),
        ("data", "pack"),
        ("pretrain",),
        ("embed",),
        ("evaluate",),
        ("compare",),
        ("index",),
        ("search",),
        ("pitch",),
        ("key",),
        ("tempo",),
        ("demo",),
    }
    shown = 0
    for words, parser in verbs.items():
        assert main([*words, "--help"]) == 0
        text = capsys.readouterr().out
        assert "_empty" not in text and "object at 0x" not in text, words
        for action in parser._actions:
            if isinstance(action.default, Default):
                assert str(action.default) and "_empty" not in str(action.default)
                shown += 1
    assert shown >= 20


def test_defaults_in_help_are_the_functions_own():
    from musicssl.pack import pack

    verbs = dict(verb_parsers(build_parser()))
    sr = next(a for a in verbs[("data", "pack")]._actions if a.dest == "sr")
    assert str(sr.default) == str(inspect.signature(pack).parameters["sr"].default) == "16000"


def test_options_that_take_only_their_default_are_gone():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["embed", ".", ".", "--out", "e.npz", "--window", "3"])


def recording(monkeypatch, target: str, returns: Any = None) -> list[dict[str, Any]]:
    """Replace ``module:function`` by one that checks its arguments against the real signature."""
    module, _, name = target.partition(":")
    real = getattr(importlib.import_module(module), name)
    calls: list[dict[str, Any]] = []

    def fake(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)  # a renamed keyword fails here
        calls.append(dict(bound.arguments))
        return returns

    monkeypatch.setattr(f"{module}.{name}", fake)
    return calls


def test_given_options_reach_the_functions_and_the_rest_keep_their_defaults(
    tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "audio"
    folder.mkdir()
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")

    built = recording(monkeypatch, "musicssl.builtin:build_corpus", returns={})
    assert main(["corpus", "build", "--out", str(tmp_path / "c"), "--size", "tiny"]) == 0
    assert built == [{"out_dir": str(tmp_path / "c"), "size": "tiny"}]

    indexed = recording(monkeypatch, "musicssl.corpus:index_folder", returns="ok")
    argv = ["data", "index", str(folder), "--out", str(manifest), "--split-by", "parent"]
    assert main([*argv, "--workers", "3"]) == 0
    assert indexed == [
        {"root": str(folder), "out": str(manifest), "split_by": "parent", "workers": 3}
    ]

    packed = recording(monkeypatch, "musicssl.pack:pack", returns="ok")
    assert main(["data", "pack", str(manifest), "--out", str(tmp_path / "s"), "--sr", "22050"]) == 0
    assert packed == [{"manifest": str(manifest), "out": str(tmp_path / "s"), "sr": 22050}]

    loaded = recording(monkeypatch, "musicssl.embed:load", returns="model")
    embedded = recording(
        monkeypatch, "musicssl.embed_folder:embed_files", returns={"embedded": 1, "skipped": 0}
    )
    out = str(tmp_path / "e.npz")
    argv = ["embed", str(folder), str(folder), "--out", out, "--hop", "0.5", "--layer", "2"]
    assert main([*argv, "--frames"]) == 0
    assert loaded == [{"path": str(folder)}]
    assert embedded == [
        {
            "model": "model",
            "source": str(folder),
            "out": out,
            "hop": 0.5,
            "layers": 2,
            "frames": True,
        }
    ]
    embedded.clear()
    assert main([*argv[:-1], "-1"]) == 0  # the last layer, counted from the end
    assert embedded[0]["layers"] == -1
    embedded.clear()
    assert main([*argv[:-2], "--layers", "all"]) == 0  # evaluate's spelling works here too
    assert embedded[0]["layers"] == "all"

    evaluated = recording(monkeypatch, "musicssl.evaluate.run:evaluate")
    argv = ["evaluate", "baseline:mfcc", "--out", str(tmp_path / "r"), "--baselines", "none"]
    assert main([*argv, "--seeds", "2"]) == 0
    assert evaluated == [
        {"source": "baseline:mfcc", "out": str(tmp_path / "r"), "seeds": 2, "baselines": []}
    ]
    assert "note: --seeds 2 is too few for the report's noise rule" in capsys.readouterr().err
    assert main([*argv, "--seeds", "3"]) == 0
    assert "too few" not in capsys.readouterr().err

    compared = recording(monkeypatch, "musicssl.evaluate.report.compare:compare_table", "table")
    assert main(["compare", str(folder), str(tmp_path)]) == 0
    assert compared == [{"dirs": [str(folder), str(tmp_path)]}]

    demos = recording(monkeypatch, "musicssl.demo:run_demo")
    assert main(["demo", "--minutes", "0.5", "--corpus-size", "tiny"]) == 0
    assert demos == [{"minutes": 0.5, "corpus_size": "tiny"}]
    assert "table" in capsys.readouterr().out


def test_pretrain_loads_the_recipe_with_its_overrides_even_after_options(tmp_path, monkeypatch):
    from musicssl.recipe import Recipe

    trained = recording(monkeypatch, "musicssl.train:pretrain", returns=tmp_path / "ckpt")
    monkeypatch.setattr("musicssl.demo.with_builtin_store", lambda recipe: recipe)
    run = tmp_path / "run"
    argv = ["pretrain", "simclr-shortchunk-cpu", "train.steps=7", "--out", str(run)]
    assert main([*argv, "train.batch_size=4", "data.store=somewhere"]) == 0
    (call,) = trained
    assert isinstance(call["recipe"], Recipe)
    assert (call["recipe"].train.steps, call["recipe"].train.batch_size) == (7, 4)
    # Kept whole in the run, so that it resumes from any folder.
    assert call["recipe"].data.store == os.path.abspath("somewhere")
    assert call["out"] == run and call["resume"] is False


def test_training_on_a_corpus_not_yet_built_says_where_it_builds_it(tmp_path, monkeypatch, capsys):
    from musicssl.demo import with_builtin_store
    from musicssl.recipe import Recipe, recipe_path

    built = recording(monkeypatch, "musicssl.builtin:build_corpus")
    recording(monkeypatch, "musicssl.pack:pack")
    typo = tmp_path / "corpsu"
    recipe = Recipe.load(recipe_path("simclr-shortchunk-cpu"), [f"data.corpus={typo}"])
    assert with_builtin_store(recipe).data.store == str(typo / "store-16000")
    assert capsys.readouterr().err == (
        f"data.corpus: no built-in corpus in {typo}; building the small one there (minutes; "
        "data.store=STORE trains on your own)\n"
    )
    assert len(built) == 1
    (typo / "manifest.jsonl").parent.mkdir()
    (typo / "manifest.jsonl").write_text("")  # built: reused without a word
    with_builtin_store(Recipe.load(recipe_path("simclr-shortchunk-cpu"), [f"data.corpus={typo}"]))
    assert capsys.readouterr().err == "" and len(built) == 2


@pytest.mark.parametrize("verb", [["embed", ".", "."], ["pretrain", "mae-vit-cpu"]])
def test_an_empty_out_is_refused_not_read_as_the_current_folder(verb, capsys):
    assert main([*verb, "--out", ""]) == 2
    assert capsys.readouterr().err == (
        f"musicssl {verb[0]}: error: argument --out: empty path; give a name "
        f"(see musicssl {verb[0]} --help)\n"
    )


@pytest.mark.parametrize("wrote", [False, True])
def test_an_interrupted_start_leaves_no_folder_but_a_started_run_stays(
    tmp_path, monkeypatch, capsys, wrote
):
    from musicssl.checkpoint import RUN_MARKER

    def interrupted(recipe, *, out, resume=False, progress=True):
        if wrote:  # as a run stopped before its first checkpoint leaves it
            (out / RUN_MARKER).touch()
        raise KeyboardInterrupt

    monkeypatch.setattr("musicssl.demo.with_builtin_store", lambda recipe: recipe)
    monkeypatch.setattr("musicssl.train.pretrain", interrupted)
    run = tmp_path / "new" / "run"
    argv = ["pretrain", "simclr-shortchunk-cpu", "data.store=somewhere", "--out", str(run)]
    assert main(argv) == 130
    assert (tmp_path / "new").exists() is wrote
    if wrote:
        assert sorted(path.name for path in run.iterdir()) == [".lock", RUN_MARKER]


def test_an_unknown_option_points_to_the_verbs_own_help(tmp_path, capsys):
    assert main(["embed", str(tmp_path), str(tmp_path), "--out", "e.npz", "--seeds", "3"]) == 2
    error = capsys.readouterr().err
    assert error == (
        "musicssl: error: unrecognized arguments: --seeds 3 (see musicssl embed --help)\n"
    )
    # A misspelt option that leaves a required one missing is named beside it.
    assert main(["search", str(tmp_path), "--run", str(tmp_path), "--txt", "organ"]) == 2
    assert capsys.readouterr().err == (
        "musicssl search: error: one of the arguments --text --audio is required; --txt is not "
        "an option of musicssl search (see musicssl search --help)\n"
    )
    # A positional given after a list option was read into the list: the error says so.
    assert main(["evaluate", "--tasks", "key", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        "musicssl evaluate: error: the following arguments are required: SOURCE (--tasks read "
        f"{tmp_path} as one of its values: give SOURCE before --tasks) (see musicssl evaluate "
        "--help)\n"
    )
    # A recipe after its settings is named as the recipe it is.
    assert main(["pretrain", "--out", str(tmp_path / "r"), "train.steps=2", "clmr"]) == 2
    assert "'clmr' is a recipe: give the RECIPE first, then key=value settings" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.options.mask_ratio=abc", "method.options.mask_ratio must be a number, got 'abc'"),
        ("augment.options.p_noise=0.1", "augment.options.p_noise: chain none takes no option"),
        ("train.stpes=5", "override train.stpes=5: unknown key 'stpes' in 'train' (known: "),
    ],
)
def test_pretrain_refuses_a_bad_option_or_override_in_one_line_before_any_work(
    tmp_path, monkeypatch, capsys, override, message
):
    trained = recording(monkeypatch, "musicssl.train:pretrain", returns=tmp_path / "ckpt")
    monkeypatch.setattr("musicssl.demo.with_builtin_store", lambda recipe: pytest.fail("packed"))
    run = tmp_path / "run"
    assert main(["pretrain", "mae-vit-cpu", override, "--out", str(run)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"musicssl: error: {message}") and error.count("\n") == 1
    assert trained == [] and not run.exists()


def test_resume_takes_the_runs_own_recipe(tmp_path, monkeypatch, capsys):
    from musicssl.recipe import Recipe, recipe_path

    trained = recording(monkeypatch, "musicssl.train:pretrain", returns=tmp_path / "ckpt")
    monkeypatch.setattr("musicssl.demo.with_builtin_store", lambda recipe: recipe)
    from musicssl.checkpoint import start_run

    run = tmp_path / "run"  # as a run killed before its first checkpoint leaves it
    start_run(run, Recipe.load(recipe_path("simclr-shortchunk-cpu"), ["train.steps=9"]))
    assert main(["pretrain", "--resume", str(run)]) == 0
    assert trained[0]["recipe"].train.steps == 9 and trained[0]["resume"] is True
    assert main(["pretrain", "simclr-shortchunk-cpu", "--resume", str(run)]) == 1
    assert "give only RUN_DIR" in capsys.readouterr().err


SUBNORMAL_FLUSHED = "(torch.tensor([1e-39]) * 1.0).item() == 0.0"


def python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def test_importing_the_library_changes_no_process_setting():
    imports = "import musicssl, musicssl.train, musicssl.embed, musicssl.evaluate.run, musicssl.cli"
    state = f"os.environ.get('OMP_WAIT_POLICY'), {SUBNORMAL_FLUSHED}"
    code = f"import os, torch; {imports}; print({state})"
    assert python(code) == "None False"


def test_the_command_sets_the_process_settings_before_a_torch_verb_runs(tmp_path):
    code = f"""
import os
from musicssl import cli, cli_verbs
def show(args):
    import torch
    print(os.environ.get("OMP_WAIT_POLICY"), {SUBNORMAL_FLUSHED})
cli_verbs.run_embed = show
cli.main(["embed", {str(tmp_path)!r}, {str(tmp_path)!r}, "--out", {str(tmp_path / "e.npz")!r}])
"""
    assert python(code) == "PASSIVE True"


def test_the_command_writes_no_default_of_its_own():
    folder = Path(cli.__file__).parent
    for module in ("cli.py", "cli_verbs.py", "cli_data.py", "cli_options.py"):
        source = (folder / module).read_text()
        for written in ('"data/corpus"', '"runs/demo"', '"small"', "16000", "~/.cache"):
            assert written not in source, (module, written)


def test_a_packaged_recipe_named_as_a_file_is_pointed_to(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no mae-vit-cpu.yaml here
    assert main(["pretrain", "mae-vit-cpu.yaml", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert "mae-vit-cpu.yaml: no such recipe file (the packaged recipe is named mae-vit-cpu" in err
    assert main(["pretrain", "elsewhere/mae-vit-cpu.yaml", "--out", "run"]) == 2
    assert "packaged" not in capsys.readouterr().err  # a path of the user's, not a name
    assert not (tmp_path / "run").exists()

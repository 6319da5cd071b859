"""evaluate.report.reconstruction: the MAE figure of a checkpoint, and only of an MAE one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from musicssl import checkpoint
from musicssl.evaluate.report.folder import write_evaluation
from musicssl.evaluate.report.reconstruction import FILE, _reconstruct, mae_reconstruction
from musicssl.recipe import Recipe, recipe_path
from musicssl.train import build_parts

PNG = b"\x89PNG\r\n\x1a\n"


def _run(folder: Path, recipe_name: str) -> Path:
    """A run folder holding the untrained parts of a packaged recipe as its checkpoint."""
    recipe = Recipe.load(recipe_path(recipe_name))
    torch.manual_seed(0)
    parts = build_parts(recipe)
    checkpoint.start_run(folder, recipe)
    checkpoint.write_checkpoint(folder, step=1, encoder_name=recipe.encoder.name,
                                method=parts.method, training_state={}, recipe=recipe)  # fmt: skip
    return folder


def test_an_mae_run_gets_its_reconstruction_figure_in_the_report(tiny_corpus, tmp_path):
    run = _run(tmp_path / "mae", "mae-vit-cpu")
    figure = mae_reconstruction(run, tiny_corpus, num_clips=2)
    assert figure is not None and figure.file == FILE and figure.png.startswith(PNG)
    assert "80% of patches" in figure.caption and "constant-Q spectrograms" in figure.caption
    results = {"source": str(run), "corpus": str(tiny_corpus), "seeds": 1, "tasks": {}}
    written = write_evaluation(tmp_path / "report", results)
    assert FILE in written and (tmp_path / "report" / FILE).read_bytes().startswith(PNG)
    assert FILE in (tmp_path / "report" / "report.md").read_text()
    listed = json.loads((tmp_path / "report" / "results.json").read_text())["report_files"]
    assert FILE in listed


def test_other_sources_get_no_reconstruction_figure(tiny_corpus, tmp_path):
    run = _run(tmp_path / "simclr", "simclr-shortchunk-cpu")
    assert mae_reconstruction(run, tiny_corpus) is None
    assert mae_reconstruction("baseline:mfcc", tiny_corpus) is None
    assert mae_reconstruction(tmp_path / "missing", tiny_corpus) is None


def test_an_mae_checkpoint_without_its_decoder_says_why_it_has_no_figure(
    tiny_corpus, tmp_path, capsys
):
    run = _run(tmp_path / "mae", "mae-vit-cpu")
    weights = checkpoint.checkpoint_folder(run) / "method.safetensors"
    weights.unlink()
    assert mae_reconstruction(run, tiny_corpus) is None
    assert f"no MAE reconstruction figure: {weights}" in capsys.readouterr().err


def test_reconstruction_keeps_visible_patches_and_blanks_hidden_ones(tiny_corpus, tmp_path):
    run = _run(tmp_path / "mae", "mae-vit-cpu")
    encoder = checkpoint.load_encoder(run).eval()
    parts = build_parts(Recipe.load(recipe_path("mae-vit-cpu")))
    clips = torch.randn(2, encoder.input_samples) * 0.1
    with torch.no_grad():
        original, masked, rebuilt = _reconstruct(
            encoder, parts.method.decoder.eval(), clips, mask_ratio=0.8, normalised=True, seed=0
        )
    hidden = torch.from_numpy(masked).isnan()
    assert hidden.float().mean().item() == pytest.approx(0.8, abs=0.01)
    assert torch.equal(torch.from_numpy(rebuilt)[~hidden], torch.from_numpy(original)[~hidden])
    assert not torch.from_numpy(rebuilt).isnan().any()

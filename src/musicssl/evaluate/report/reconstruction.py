"""What an MAE checkpoint reconstructs: original, masked and reconstructed spectrograms.

Drawn for the report of a run (or checkpoint) whose recipe trains ``mae``, on a few test
clips of the corpus it is evaluated on, evenly spaced over its test split. The decoder is
rebuilt from the recipe's method options and the ``decoder.*`` weights of
``method.safetensors``; the mask is drawn from a fixed seed, so two reports of one
checkpoint show the same picture.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from musicssl import audio, checkpoint
from musicssl.encoders import SpectrogramViT
from musicssl.encoders._transformer import final_norm_mover
from musicssl.encoders.patch_decoder import DECODER_DEFAULTS, PatchDecoder
from musicssl.errors import MusicSSLError
from musicssl.evaluate.report.canvas import ReportFigure, new_figure, png
from musicssl.losses import random_patch_mask
from musicssl.manifest import read_manifest
from musicssl.recipe import Recipe

FILE = "figures/mae_reconstruction.png"


def mae_reconstruction(
    source: str | os.PathLike, corpus: str | os.PathLike, *, num_clips: int = 3, seed: int = 0
) -> ReportFigure | None:
    """The figure for an MAE checkpoint; None when ``source`` is not one, or when no corpus
    is at ``corpus`` (an evaluation on your own tasks alone).

    Args:
        source: a run folder (its latest checkpoint) or a checkpoint folder.
        corpus: a corpus folder with ``manifest.jsonl``; ``num_clips`` of its test clips,
            evenly spaced in path order, are drawn, the start of each at the training crop.
        num_clips: rows of the figure.
        seed: seeds the mask.

    Raises:
        MusicSSLError: an MAE checkpoint whose weights or clips cannot be read.
    """
    try:
        folder = checkpoint.checkpoint_folder(source)
    except MusicSSLError:
        return None
    if not (folder / "recipe.yaml").is_file():
        return None
    recipe = Recipe.load(folder / "recipe.yaml")
    if recipe.method.name != "mae" or not (Path(corpus) / "manifest.jsonl").is_file():
        return None
    if not (folder / "method.safetensors").is_file():
        print(f"note: no MAE reconstruction figure: {folder / 'method.safetensors'} (the "
              "decoder's weights) is missing", file=sys.stderr, flush=True)  # fmt: skip
        return None
    encoder = checkpoint.load_encoder(folder).eval()
    if not isinstance(encoder, SpectrogramViT):
        return None
    options = {**DECODER_DEFAULTS, **recipe.method.options}
    decoder = PatchDecoder(
        encoder.embedding_dim,
        encoder.patch[0] * encoder.patch[1],
        width=int(options["decoder_width"]),
        depth=int(options["decoder_depth"]),
        num_heads=int(options["decoder_heads"]),
    ).eval()
    weights = checkpoint.read_weights(folder / "method.safetensors")
    final_norm_mover("decoder.input_norm")(weights, "")  # an older run's encoder.norm
    decoder.load_state_dict({k[len("decoder.") :]: v for k, v in weights.items()
                             if k.startswith("decoder.")})  # fmt: skip
    clips, names = _test_clips(Path(corpus), encoder, num_clips)
    with torch.no_grad():
        original, masked, rebuilt = _reconstruct(
            encoder,
            decoder,
            clips,
            mask_ratio=float(options.get("mask_ratio", 0.8)),
            normalised=bool(options.get("normalise_targets", True)),
            seed=seed,
        )
    ratio = float(options.get("mask_ratio", 0.8))
    cqt = encoder.config()["frontend"] == "cqt"
    spectrum, band = ("constant-Q", "CQT bin") if cqt else ("log-mel", "mel band")
    return ReportFigure(
        file=FILE,
        title="MAE reconstructions",
        caption=(
            f"Standardised {spectrum} spectrograms of {len(names)} test clips "
            f"({', '.join(names)}): the original, the {ratio:.0%} of patches hidden from the "
            "encoder (blank), and the visible patches with the decoder's prediction in the "
            "hidden places (un-normalised with each original patch's mean and variance)."
        ),
        png=_draw(original, masked, rebuilt, names, band=band),
    )


def _test_clips(corpus: Path, encoder: SpectrogramViT, count: int) -> tuple[Tensor, list[str]]:
    """``count`` test clips evenly spaced in path order, cut or zero-padded to the training
    crop. Shape: (count, input_samples)."""
    rows = sorted(
        (row for row in read_manifest(corpus / "manifest.jsonl") if row.get("split") == "test"),
        key=lambda row: str(row["path"]),
    )
    rows = rows[:: max(1, len(rows) // count)][:count]  # spread over the split: other pieces
    if not rows:
        raise MusicSSLError(f"{corpus / 'manifest.jsonl'}: no clip of the test split to draw")
    length = encoder.input_samples
    clips = np.zeros((len(rows), length), dtype=np.float32)
    for index, row in enumerate(rows):
        wave = audio.load(row["abspath"], sr=encoder.sample_rate)[:length]
        clips[index, : len(wave)] = wave
    return torch.from_numpy(clips), [Path(str(row["path"])).stem for row in rows]


def _reconstruct(
    encoder: SpectrogramViT,
    decoder: PatchDecoder,
    clips: Tensor,
    *,
    mask_ratio: float,
    normalised: bool,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Original, masked (NaN where hidden) and reconstructed spectrograms. (B, n_bins, T) each."""
    spec = encoder.spectrogram(clips)
    grid = encoder.patch_grid(spec.shape[-1])
    patches = encoder.patchify(spec)  # (B, N, P)
    keep_index, mask = random_patch_mask(
        patches.shape[0],
        patches.shape[1],
        mask_ratio=mask_ratio,
        generator=torch.Generator().manual_seed(seed),
    )
    prediction = decoder(encoder.forward_tokens(encoder.embed_patches(spec), keep_index),
                         keep_index, grid)  # fmt: skip
    if normalised:  # predictions are in each patch's own standardised units
        mean = patches.mean(dim=-1, keepdim=True)
        std = torch.sqrt(patches.var(dim=-1, keepdim=True, unbiased=False) + 1e-6)
        prediction = prediction * std + mean
    hidden = mask[..., None]
    masked = torch.where(hidden, torch.full_like(patches, float("nan")), patches)
    rebuilt = torch.where(hidden, prediction, patches)
    return tuple(encoder.unpatchify(p, grid).numpy() for p in (patches, masked, rebuilt))  # type: ignore[return-value]


def _draw(
    original: np.ndarray, masked: np.ndarray, rebuilt: np.ndarray, names: list[str], *, band: str
) -> bytes:
    rows = len(names)
    figure = new_figure(10.0, 1.9 * rows + 0.6)
    axes = figure.subplots(rows, 3, squeeze=False, sharex=True, sharey=True)
    low, high = np.nanpercentile(original, [1, 99])
    for row, name in enumerate(names):
        for column, (title, image) in enumerate(
            (("original", original), ("masked", masked), ("reconstructed", rebuilt))
        ):
            ax = axes[row][column]
            ax.imshow(image[row], origin="lower", aspect="auto", vmin=low, vmax=high,
                      cmap="magma", interpolation="nearest")  # fmt: skip
            if row == 0:
                ax.set_title(title)
            if column == 0:
                ax.set_ylabel(f"{name}\n{band}", fontsize=8)
            if row == rows - 1:
                ax.set_xlabel("frame")
    return png(figure)

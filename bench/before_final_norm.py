"""A transformer run evaluated before its encoder's final LayerNorm, beside its random weights
read the same way.

The last layer of ``SpectrogramViT`` and ``FrameTransformer`` is the last block's tokens
through a LayerNorm; every earlier layer is a block's tokens as they are. This script swaps
that norm for the identity in every encoder the evaluation opens (the run's and the random
weights' of the same architecture), then runs the whole suite: the headline is then the last
block's tokens, un-normalised, averaged into the clip vector.

    OMP_NUM_THREADS=2 python bench/before_final_norm.py RUN --corpus data/corpus --out REPORT

The cache goes to ``REPORT-cache``, apart from the default one, whose entries are keyed by
the checkpoint and would otherwise be mistaken for the normed embeddings.
"""

from __future__ import annotations

import argparse
from typing import Any

from torch import nn

import musicssl.evaluate.run as evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a transformer run folder or checkpoint")
    parser.add_argument("--corpus", default="data/corpus", help="the built-in corpus folder")
    parser.add_argument("--out", required=True, help="the report folder")
    parser.add_argument("--seeds", type=int, default=3, help="probe fits per task")
    args = parser.parse_args()

    open_source = evaluation.open_source

    def without_final_norm(*pos: Any, **named: Any) -> Any:
        source = open_source(*pos, **named)
        encoder = getattr(source.model, "encoder", None)
        if isinstance(getattr(encoder, "norm", None), nn.LayerNorm):
            encoder.norm = nn.Identity()
        return source

    evaluation.open_source = without_final_norm
    evaluation.evaluate(
        args.run,
        out=args.out,
        corpus=args.corpus,
        seeds=args.seeds,
        baselines=["random"],
        cache=f"{args.out}-cache",
    )


if __name__ == "__main__":
    main()

"""MAE's light decoder: visible-patch latents plus mask tokens back to every patch.

It lives beside the encoders, not inside the MAE method, because the evaluation report
rebuilds it from a checkpoint to draw reconstructions, and evaluation never imports methods.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from musicssl.encoders._transformer import Block, check_width, init_weights, sincos_2d

__all__ = ["DECODER_DEFAULTS", "PatchDecoder"]

# The decoder's size when a recipe names none; the MAE factory and the report both read it.
DECODER_DEFAULTS = {"decoder_width": 128, "decoder_depth": 2, "decoder_heads": 4}


class PatchDecoder(nn.Module):
    """Normalise and project the visible latents, fill the hidden places with a learnt mask
    token, add 2-D sin-cos positions, run pre-norm blocks, and predict every patch's values.

    The first norm is the one a ViT encoder ends in, held here because the encoder's
    read-out leaves it out (``SpectrogramViT``).

    He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"; Huang et al. 2022,
    "Masked Autoencoders that Listen" (a shallow, narrow decoder over all patches).

    Args:
        in_dim: The encoder's token width.
        patch_size: Values per patch (patch bins * patch frames).
        width: The decoder's token width (a multiple of 4 and of ``num_heads``).
        depth: Transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``width``.
    """

    def __init__(
        self,
        in_dim: int,
        patch_size: int,
        *,
        width: int = DECODER_DEFAULTS["decoder_width"],
        depth: int = DECODER_DEFAULTS["decoder_depth"],
        num_heads: int = DECODER_DEFAULTS["decoder_heads"],
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        check_width("PatchDecoder", width, depth, num_heads, 4)
        self.width = width
        self.input_norm = nn.LayerNorm(in_dim)
        self.embed = nn.Linear(in_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.blocks = nn.ModuleList(
            Block(width, num_heads, mlp_ratio=mlp_ratio) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)
        self.predict = nn.Linear(width, patch_size)
        init_weights(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent: Tensor, keep_index: Tensor, grid: tuple[int, int]) -> Tensor:
        """Every patch's prediction from the visible patches' latents.

        Args:
            latent: The encoder's output on the visible patches. Shape: (B, K, in_dim).
            keep_index: Their patch indices. Shape: (B, K), int64.
            grid: (frequency patches, time patches); their product is the patch count N.

        Returns:
            Shape: (B, N, patch_size).
        """
        rows, cols = grid
        batch_size = latent.shape[0]
        visible = self.embed(self.input_norm(latent))  # (B, K, W)
        tokens = self.mask_token.to(visible.dtype).expand(batch_size, rows * cols, self.width)
        index = keep_index[..., None].expand(-1, -1, self.width)
        h = tokens.scatter(1, index, visible)  # (B, N, W): latents in place, mask tokens elsewhere
        h = h + sincos_2d(rows, cols, self.width, device=h.device).to(h.dtype)
        for block in self.blocks:
            h = block(h)
        return self.predict(self.norm(h))

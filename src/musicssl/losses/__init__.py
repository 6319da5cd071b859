"""Self-supervised losses as pure functions over tensors, one module per family.

Every loss takes embeddings of two views, ``z_a`` and ``z_b`` of shape ``(batch_size, dim)``,
row ``i`` of one view pairing with row ``i`` of the other. Losses with several named terms
return ``(loss, terms)``: ``loss`` is the weighted total to back-propagate and ``terms`` maps
each term's name to its *unweighted* value, so a method can log them as they are.

Under ``torch.distributed`` (world size > 1) the batch-level losses can gather the other
processes' embeddings with gradient (``gather=True``). The per-process loss is then built so
that data-parallel training, which averages gradients over processes, gets exactly the gradient
of the single-process loss over the concatenated batch. That needs every process to hold the
same local batch size (drop the last incomplete batch).
"""

from musicssl.losses._shared import gather_with_grad
from musicssl.losses.audio_text import clip_loss, slap_loss
from musicssl.losses.equivariant import (
    expected_value_equivariance,
    invariance_cross_entropy,
    key_cpsd_loss,
    shift_cross_entropy,
)
from musicssl.losses.masked import (
    codebook_usage,
    masked_code_cross_entropy,
    masked_patch_mse,
    normalise_patches,
    random_patch_mask,
    random_projection_codes,
    random_quantizer,
    span_mask,
)
from musicssl.losses.two_views import (
    barlow_twins_loss,
    byol_loss,
    cosine_ema_momentum,
    ema_update,
    nt_xent,
    vicreg_loss,
)

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "clip_loss",
    "codebook_usage",
    "cosine_ema_momentum",
    "ema_update",
    "expected_value_equivariance",
    "gather_with_grad",
    "invariance_cross_entropy",
    "key_cpsd_loss",
    "masked_code_cross_entropy",
    "masked_patch_mse",
    "normalise_patches",
    "nt_xent",
    "random_patch_mask",
    "random_projection_codes",
    "random_quantizer",
    "shift_cross_entropy",
    "slap_loss",
    "span_mask",
    "vicreg_loss",
]

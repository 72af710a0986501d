"""Analytic parameters, MACs and activation bytes of a temporal op at a slot (no torch).

Mirrors ``nas.model._temporal`` module by module; tests check it against the real modules.
MACs count convolutions, linears and attention matmuls (what ``torch.utils.flop_counter``
counts, halved); norms and elementwise ops are not counted.
"""

from __future__ import annotations

from nas.cost._types import BlockCost
from nas.space import Geometry, OpChoice, Slot

__all__ = ["temporal_op_cost"]


def temporal_op_cost(choice: OpChoice, slot: Slot, geometry: Geometry) -> BlockCost:
    """Cost of ``choice`` at ``slot`` for one UNet call of ``geometry`` (effective batch)."""
    if choice.op == "none":
        return BlockCost(0, 0, 0, 0)
    c, hw, t = slot.channels, slot.height * slot.width, geometry.frames
    b = geometry.effective_batch
    n = b * t  # frames folded into the batch
    tokens = n * hw
    bpe = geometry.bytes_per_element
    out_elems = tokens * c
    norm = 2 * c  # GroupNorm affine
    if choice.op == "conv1d":
        k = int(choice.get("kernel"))
        per_out = k if choice.get("depthwise") else c * k
        params = norm + c * per_out + c
        return BlockCost(params, out_elems * per_out, out_elems * bpe, out_elems * bpe)
    if choice.op == "conv3d":
        kt, ks = int(choice.get("kernel_t")), int(choice.get("kernel_s"))
        per_out = c * kt * ks * ks
        params = norm + c * per_out + c
        return BlockCost(params, out_elems * per_out, out_elems * bpe, out_elems * bpe)
    heads, ratio, pos = int(choice.get("heads")), int(choice.get("ffn_ratio")), choice.get("pos")
    cross = choice.op.startswith("x")
    video = choice.op.endswith("3d")
    L, D = geometry.text_length, geometry.text_dim
    lin = c * c + c  # a Linear(C, C) with bias
    params = norm + lin  # GroupNorm, proj_in
    macs = tokens * c * c  # proj_in
    if pos == "learned":
        params += t * c
    # self-attention: LayerNorm, to_q/k/v (no bias), to_out
    params += 2 * c + 3 * c * c + lin
    macs += 4 * tokens * c * c
    seq_batch, seq_len = (b, t * hw) if video else (b * hw, t)
    macs += 2 * seq_batch * seq_len * seq_len * c  # QK^T and AV over all heads
    peak = seq_batch * heads * seq_len * seq_len
    if cross:
        params += 2 * c + c * c + 2 * D * c + lin
        macs += 2 * tokens * c * c + 2 * b * L * D * c + 2 * tokens * L * c
        peak = max(peak, b * heads * t * hw * L)
    if ratio:
        params += 2 * c + (c * ratio * c + ratio * c) + (ratio * c * c + c)
        macs += 2 * tokens * c * ratio * c
        peak = max(peak, tokens * ratio * c)
    params += lin  # proj_out
    macs += tokens * c * c
    peak = max(peak, out_elems)
    return BlockCost(params, macs, out_elems * bpe, peak * bpe)

"""Cost records shared by the analytic counters and the cost model."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BlockCost"]


@dataclass(frozen=True)
class BlockCost:
    """Analytic cost of one block (or temporal op) for one UNet call.

    ``macs`` counts multiply-accumulates of convolutions, linears and attention matmuls;
    ``out_bytes`` is the block's output tensor; ``peak_bytes`` the largest single tensor the
    block creates (attention scores as a non-fused implementation materialises them), at least
    ``out_bytes``. Bytes are at the geometry's precision.
    """

    params: int
    macs: int
    out_bytes: int
    peak_bytes: int

"""Analytic costs: parameters, MACs and activation bytes, without building a model."""

from nas.cost._backbone import backbone_block_cost
from nas.cost._summary import ArchCost, arch_cost, backbone_costs, space_summary
from nas.cost._temporal import temporal_op_cost
from nas.cost._types import BlockCost

__all__ = [
    "ArchCost",
    "BlockCost",
    "arch_cost",
    "backbone_block_cost",
    "backbone_costs",
    "space_summary",
    "temporal_op_cost",
]

"""Analytic costs: parameters, MACs and activation bytes, without building a model."""

from nas.cost._backbone import backbone_block_cost
from nas.cost._model import ArchEstimate, CostModel, MissingRowsError
from nas.cost._rows import RowSpec, arch_rows, backbone_row, rows_for_space, temporal_row
from nas.cost._summary import ArchCost, arch_cost, backbone_costs, space_summary
from nas.cost._table import Table, TableRow, find_table, shipped_tables
from nas.cost._temporal import temporal_op_cost
from nas.cost._types import BlockCost

__all__ = [
    "ArchCost",
    "ArchEstimate",
    "BlockCost",
    "CostModel",
    "MissingRowsError",
    "RowSpec",
    "Table",
    "TableRow",
    "arch_cost",
    "arch_rows",
    "backbone_block_cost",
    "backbone_costs",
    "backbone_row",
    "find_table",
    "rows_for_space",
    "shipped_tables",
    "space_summary",
    "temporal_op_cost",
    "temporal_row",
]

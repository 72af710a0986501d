"""Analytic costs: parameters, MACs and activation bytes, without building a model."""

from nas.cost._backbone import backbone_block_cost
from nas.cost._breakdown import BlockCell, CostBreakdown, CostParts, merge_cells, where_of
from nas.cost._model import MIB, ArchEstimate, CostModel, MissingRowsError
from nas.cost._rows import (
    NETWORK_KINDS,
    PIPELINE_KINDS,
    RowOption,
    RowSpec,
    arch_rows,
    backbone_digest,
    backbone_row,
    call_row,
    decoder_row,
    glue_row,
    network_rows,
    pipeline_rows,
    rows_for_space,
    temporal_row,
    text_encoder_row,
)
from nas.cost._summary import ArchCost, arch_cost, backbone_costs, space_summary
from nas.cost._table import (
    TABLES_ENV,
    Table,
    TableMeta,
    TableRow,
    find_table,
    shipped_alternative,
    shipped_tables,
    table_search_path,
    user_tables,
)
from nas.cost._temporal import temporal_op_cost
from nas.cost._types import BlockCost

__all__ = [
    "MIB",
    "NETWORK_KINDS",
    "PIPELINE_KINDS",
    "TABLES_ENV",
    "ArchCost",
    "ArchEstimate",
    "BlockCell",
    "BlockCost",
    "CostBreakdown",
    "CostModel",
    "CostParts",
    "MissingRowsError",
    "RowOption",
    "RowSpec",
    "Table",
    "TableMeta",
    "TableRow",
    "arch_cost",
    "arch_rows",
    "backbone_block_cost",
    "backbone_costs",
    "backbone_digest",
    "backbone_row",
    "call_row",
    "decoder_row",
    "find_table",
    "glue_row",
    "merge_cells",
    "network_rows",
    "pipeline_rows",
    "rows_for_space",
    "shipped_alternative",
    "shipped_tables",
    "space_summary",
    "table_search_path",
    "temporal_op_cost",
    "temporal_row",
    "text_encoder_row",
    "user_tables",
    "where_of",
]

"""Measurement backends (ONNX Runtime, PyTorch, Core ML) and device descriptions.

Profilers write latency/memory tables that ``nas`` reads. Heavy backends (onnxruntime,
coremltools) are imported only when a device that needs them is profiled.
"""

from profilers._base import Profiler, TimingProtocol, percentiles, scratch_dir, time_repeats
from profilers._blocks import (
    Glue,
    RowModule,
    backbone_configs,
    build_row_module,
    glue_pairs,
    pipeline_parts,
)
from profilers._coreml import (
    CoreMLProfiler,
    RooflineEstimate,
    convert_row,
    estimate_row,
    infeasible_note,
    measure_path,
    measure_remote,
    parse_operation_execution,
    quiet,
    roofline,
)
from profilers._devices import Device, Estimator, get_device, list_devices, load_device
from profilers._estimator import (
    ATTENTION_KINDS,
    FUSABLE_OPS,
    AttentionModel,
    NeuralEngineRules,
    attention_memory,
    fusion_groups,
    group_costs,
)
from profilers._import import import_rows
from profilers._ort import ExportError, MismatchError, OrtProfiler
from profilers._runner import (
    PROFILERS,
    ProfileReport,
    analytic_costs,
    get_profiler,
    profile_space,
    rows_to_profile,
)
from profilers._torch import TorchProfiler
from profilers._validate import (
    DEFAULT_VALIDATION_GEOMETRY,
    SELECTIONS,
    ValidationResult,
    select_arches,
    validate_latency,
)
from profilers._validate_stats import (
    bootstrap_tau,
    combine_runs,
    kendall_by_piece,
    read_records,
    residual_by_op,
    stats_text,
    summarize,
)

__all__ = [
    "ATTENTION_KINDS",
    "DEFAULT_VALIDATION_GEOMETRY",
    "FUSABLE_OPS",
    "PROFILERS",
    "SELECTIONS",
    "AttentionModel",
    "CoreMLProfiler",
    "Device",
    "Estimator",
    "ExportError",
    "Glue",
    "MismatchError",
    "NeuralEngineRules",
    "OrtProfiler",
    "ProfileReport",
    "Profiler",
    "RooflineEstimate",
    "RowModule",
    "TimingProtocol",
    "TorchProfiler",
    "ValidationResult",
    "analytic_costs",
    "attention_memory",
    "backbone_configs",
    "bootstrap_tau",
    "build_row_module",
    "combine_runs",
    "convert_row",
    "estimate_row",
    "fusion_groups",
    "get_device",
    "get_profiler",
    "glue_pairs",
    "group_costs",
    "import_rows",
    "infeasible_note",
    "kendall_by_piece",
    "list_devices",
    "load_device",
    "measure_path",
    "measure_remote",
    "parse_operation_execution",
    "percentiles",
    "pipeline_parts",
    "profile_space",
    "quiet",
    "read_records",
    "residual_by_op",
    "roofline",
    "rows_to_profile",
    "scratch_dir",
    "select_arches",
    "stats_text",
    "summarize",
    "time_repeats",
    "validate_latency",
]

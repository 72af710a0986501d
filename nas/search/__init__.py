"""The search: an Optuna study over a space's temporal-layer choices.

Objectives (all minimised) are latency (per video or per step) and peak memory from a device's
table (:class:`nas.cost.CostModel`), and a proxy's quality (:mod:`nas.quality`); budgets are
constraints checked before the proxy runs. ``nas search`` is a thin layer over::

    cfg, raw = compose_config(["search.trials=100", "device=iphone16pm"])
    result = run_search("search_spaces/temporal.yaml", cfg, raw)
    print(result.table())          # the Pareto front; files in result.run_dir
"""

from nas.search._config import (
    OBJECTIVES,
    PRUNERS,
    SAMPLERS,
    ConstraintsConfig,
    DeviceConfig,
    ProxyConfig,
    SamplerConfig,
    SearchConfig,
    SearchSettings,
    compose_config,
    config_dir,
)
from nas.search._objective import (
    ArchCosts,
    Evaluator,
    constraint_names,
    objective_column,
    objective_unit,
)
from nas.search._pareto import hypervolume, hypervolume_history, non_dominated, normalise
from nas.search._run import (
    RunInfo,
    SearchResult,
    TrialRecord,
    build_cost_model,
    find_run,
    front_of,
    load_records,
    make_sampler,
    open_run_study,
    ops_summary,
    run_search,
    run_table_folder,
    run_worker,
    write_outputs,
)

__all__ = [
    "OBJECTIVES",
    "PRUNERS",
    "SAMPLERS",
    "ArchCosts",
    "ConstraintsConfig",
    "DeviceConfig",
    "Evaluator",
    "ProxyConfig",
    "RunInfo",
    "SamplerConfig",
    "SearchConfig",
    "SearchResult",
    "SearchSettings",
    "TrialRecord",
    "build_cost_model",
    "compose_config",
    "config_dir",
    "constraint_names",
    "find_run",
    "front_of",
    "hypervolume",
    "hypervolume_history",
    "load_records",
    "make_sampler",
    "non_dominated",
    "normalise",
    "objective_column",
    "objective_unit",
    "open_run_study",
    "ops_summary",
    "run_search",
    "run_table_folder",
    "run_worker",
    "write_outputs",
]

"""The search: an Optuna study over a space's temporal-layer choices.

Objectives (all minimised) are latency (per video or per step) and peak memory from a device's
table (:class:`nas.cost.CostModel`), and a proxy's quality (:mod:`nas.quality`); budgets are
constraints checked before the proxy runs. ``nas search`` is a thin layer over::

    cfg, raw = compose_config(["search.trials=100", "device=iphone16pm"])
    result = run_search("search_spaces/temporal.yaml", cfg, raw)
    print(result.table())          # the Pareto front; files in result.run_dir
    nas.report.write_dashboard(result.run_dir)    # the page (the CLI does this)

The package is split by role: the config (``_config``), the sampler and pruner registries
(``_registry``), the run dir and its lock (``_rundir``), the Optuna study (``_study``), trial
evaluation (``_evaluate``), workers and progress (``_workers``), outputs (``_outputs``) and the
driver (``_run``). What a run writes is :mod:`nas.results`' schema; the search never imports
:mod:`nas.report`.
"""

from nas.search._batch import run_batches
from nas.search._config import (
    GROUPS,
    OBJECTIVES,
    ConstraintsConfig,
    DeviceConfig,
    ProxyConfig,
    SamplerConfig,
    SearchConfig,
    SearchSettings,
    compose_config,
    config_dir,
    constraints_of,
    expand_sweep,
    objectives_of,
    run_settings,
)
from nas.search._evaluate import (
    ArchCache,
    ArchCosts,
    Cached,
    Evaluator,
    TrialEvaluation,
    arch_of,
)
from nas.search._exact import ADDITIVE_COLUMNS, ExactFront, exact_front, write_exact_front
from nas.search._outputs import (
    SearchResult,
    build_cost_model,
    build_proxy,
    load_records,
    run_constraints,
    run_table_folder,
    table_provenance,
    thread_budget,
    usable_cores,
    write_outputs,
)
from nas.search._registry import (
    PRUNERS,
    SAMPLERS,
    SamplerSpec,
    check_sampler_options,
    make_pruner,
    make_sampler,
)
from nas.search._run import initial_box, reference_arches, run_search
from nas.search._rundir import find_run, run_config, run_space
from nas.search._study import (
    clear_stale_journal_lock,
    create_study,
    journal_path,
    open_run_study,
    open_storage,
    repair_journal,
    sampler_of,
)
from nas.search._workers import Tracker, recover_stale, run_batch_worker, run_worker

__all__ = [
    "ADDITIVE_COLUMNS",
    "GROUPS",
    "OBJECTIVES",
    "PRUNERS",
    "SAMPLERS",
    "ArchCache",
    "ArchCosts",
    "Cached",
    "ConstraintsConfig",
    "DeviceConfig",
    "Evaluator",
    "ExactFront",
    "ProxyConfig",
    "SamplerConfig",
    "SamplerSpec",
    "SearchConfig",
    "SearchResult",
    "SearchSettings",
    "Tracker",
    "TrialEvaluation",
    "arch_of",
    "build_cost_model",
    "build_proxy",
    "check_sampler_options",
    "clear_stale_journal_lock",
    "compose_config",
    "config_dir",
    "constraints_of",
    "create_study",
    "exact_front",
    "expand_sweep",
    "find_run",
    "initial_box",
    "journal_path",
    "load_records",
    "make_pruner",
    "make_sampler",
    "objectives_of",
    "open_run_study",
    "open_storage",
    "recover_stale",
    "reference_arches",
    "repair_journal",
    "run_batch_worker",
    "run_batches",
    "run_config",
    "run_constraints",
    "run_search",
    "run_settings",
    "run_space",
    "run_table_folder",
    "run_worker",
    "sampler_of",
    "table_provenance",
    "thread_budget",
    "usable_cores",
    "write_exact_front",
    "write_outputs",
]


def __getattr__(name: str) -> object:
    # BufferedJournal, JournalMirror and FixedSpaceNSGAII subclass Optuna classes: imported
    # on first use, so that importing nas.search imports no Optuna
    if name in ("BufferedJournal", "JournalMirror"):
        from nas.search import _journal

        return getattr(_journal, name)
    if name == "FixedSpaceNSGAII":
        from nas.search import _fixed_space

        return _fixed_space.FixedSpaceNSGAII
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Run results: the one module both the search and the dashboard speak.

``nas search`` writes a run dir; ``nas report`` and any other reader read it through these
types, never through the search's internals::

    info = RunInfo.load("experiments/runs/20261203-123100-temporal")
    s = info.require_settings()               # objectives, budgets, device, sampler, ...
    records = read_trials(info.run_dir / "trials.csv")
    front = front_of(records, s.objectives)   # the Pareto front, best first

A run dir holds ``run.json`` (:class:`RunInfo`), ``config.yaml``, ``space.yaml``, the study
storage, ``trials.csv`` (one :class:`TrialRecord` per trial), ``pareto.csv`` (the front's
records plus ``arch_yaml``), ``archs/<arch_id>.yaml`` and ``dashboard.html``. Importing this
package imports neither Optuna nor torch.
"""

from nas.results._box import HypervolumeBox
from nas.results._exact import AdditiveCosts, additive_front
from nas.results._pareto import (
    box_hypervolume,
    front_of,
    hypervolume,
    hypervolume_history,
    minimised,
    non_dominated,
    normalise,
)
from nas.results._reference import reference_arches
from nas.results._schema import (
    DECODER_CHOICE,
    METRICS,
    Constraint,
    Objective,
    RunInfo,
    RunSettings,
    TrialRecord,
    finite_or_inf,
    ops_summary,
    read_csv,
    read_trials,
    run_table_folder,
    write_csv,
    write_trials,
)

__all__ = [
    "DECODER_CHOICE",
    "METRICS",
    "AdditiveCosts",
    "Constraint",
    "HypervolumeBox",
    "Objective",
    "RunInfo",
    "RunSettings",
    "TrialRecord",
    "additive_front",
    "box_hypervolume",
    "finite_or_inf",
    "front_of",
    "hypervolume",
    "hypervolume_history",
    "minimised",
    "non_dominated",
    "normalise",
    "ops_summary",
    "read_csv",
    "read_trials",
    "reference_arches",
    "run_table_folder",
    "write_csv",
    "write_trials",
]

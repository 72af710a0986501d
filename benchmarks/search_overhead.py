"""Overhead of the search machinery against bare Optuna, side by side in one run.

Both run the same cost-only study (latency and memory from the shipped table, no proxy) on the
default space with the same sampler, seed and storage kind, for --trials trials:

- bare: ``optuna.create_study`` + ``study.optimize`` with an objective that builds the arch
  from its parameters and calls ``CostModel.evaluate`` (the least any table-driven search does);
- nas: ``run_search`` (what ``nas search experiment=cost_only`` runs): per-trial bookkeeping
  (constraints, user attributes, arch-id cache, progress) plus writing trials.csv, pareto.csv,
  the front's arch files and dashboard.html at the end (timed separately).

for each storage: the journal file (nas's default), a SQLite file, and (bare only) memory.
On its run dir's own journal nas holds a batch's writes in memory and appends them at once
(docs/failures.md says what a kill loses); bare Optuna fsyncs every write. nas opens an SQLite
file in write-ahead-log mode with synchronous=NORMAL (``nas.search.open_storage``); bare
Optuna keeps SQLite's defaults, so the row ``sqlite (wal)`` also times bare Optuna on a file
opened the way nas opens it: nas's own bookkeeping on the same storage settings.

Issue 17's targets: nas within 1.2x bare Optuna on the same storage, and at least 500
cost-only trials/s on the journal.

    python benchmarks/search_overhead.py [--trials 300] [--sampler nsga2]
    python benchmarks/search_overhead.py --trials 20 --storages journal   # a quick check
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna

from nas.results import DECODER_CHOICE
from nas.search import build_cost_model, compose_config, run_search, sampler_of, write_outputs
from nas.space import arch_from_indices, load_space

SPACE = "search_spaces/temporal.yaml"


def bare(trials: int, sampler_name: str, storage: str | None) -> float:
    cfg, _ = compose_config([f"sampler={sampler_name}", "experiment=cost_only"])
    space = load_space(SPACE)
    cost = build_cost_model(cfg, space)
    names = [(g.name, [c.key for c in g.choices]) for g in space.groups]
    if space.decode:  # the decode choice is a dimension too, named as nas names it
        names.append((DECODER_CHOICE, [c.key for c in space.decode]))
    st: object | None = None
    if storage == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        st = JournalStorage(JournalFileBackend(str(Path(tempfile.mkdtemp()) / "s.journal")))
    elif storage == "sqlite":
        st = f"sqlite:///{Path(tempfile.mkdtemp()) / 's.db'}"
    elif storage == "sqlite-wal":
        from nas.search import open_storage

        work = Path(tempfile.mkdtemp())
        st = open_storage(f"sqlite:///{work / 's.db'}", work)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        idx = [keys.index(trial.suggest_categorical(n, keys)) for n, keys in names]
        e = cost.evaluate(arch_from_indices(space, idx))
        return e.latency_s_video, e.peak_mem_mb

    t0 = time.perf_counter()
    study = optuna.create_study(
        storage=st,  # type: ignore[arg-type]
        directions=["minimize", "minimize"],
        sampler=sampler_of(cfg, 0),
    )
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - t0


def ours(trials: int, sampler_name: str, storage: str) -> tuple[float, float]:
    work = Path(tempfile.mkdtemp())
    over = [
        f"sampler={sampler_name}",
        "experiment=cost_only",
        f"search.trials={trials}",
        f"search.runs_dir={work / 'runs'}",
    ]
    if storage == "sqlite":
        over.append(f"search.storage=sqlite:///{work / 's.db'}")
    cfg, raw = compose_config(over)
    t0 = time.perf_counter()
    res = run_search(SPACE, cfg, raw, progress=False, log=lambda _m: None)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    write_outputs(res.run_dir)
    return total, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--sampler", default="nsga2")
    ap.add_argument("--storages", default="journal,sqlite", help="comma-separated")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    n = args.trials
    print(f"{n} cost-only trials, sampler {args.sampler}, default space, shipped iphone16pm table")
    print(
        f"{'storage':<10}{'bare ms/trial':>15}{'nas ms/trial':>14}{'ratio':>8}"
        f"{'nas trials/s':>14}{'outputs s':>11}{'loop trials/s':>15}"
    )
    b_mem = bare(n, args.sampler, None)
    print(f"{'memory':<10}{b_mem / n * 1e3:>15.2f}{'-':>14}{'-':>8}{'-':>14}{'-':>11}")
    for storage in args.storages.split(","):
        b = bare(n, args.sampler, storage)
        total, outputs = ours(n, args.sampler, storage)
        print(
            f"{storage:<10}{b / n * 1e3:>15.2f}{total / n * 1e3:>14.2f}{total / b:>8.2f}"
            f"{n / total:>14.1f}{outputs:>11.2f}{n / max(total - outputs, 1e-9):>15.1f}"
        )
        if storage == "sqlite":  # bare Optuna on the file opened as nas opens it
            w = bare(n, args.sampler, "sqlite-wal")
            print(f"{'  (wal)':<10}{w / n * 1e3:>15.2f}{'':>14}{total / w:>8.2f}")
    print(
        "\nnas ms/trial includes its start (config, table, storage) and the outputs written at "
        "the end;\n'outputs s' is one write_outputs call on its own (trials.csv, pareto.csv, "
        "archs/, exact_front.csv; the dashboard is nas.report's, not timed here);\n'loop "
        "trials/s' leaves that call out of nas's time. Targets: ratio <= 1.2, >= 500 trials/s."
    )


if __name__ == "__main__":
    main()

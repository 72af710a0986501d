"""FixedSpaceNSGAII: Optuna's NSGA-II with its search space kept once complete, same samples."""

from __future__ import annotations

import optuna
import pytest

from nas.search import FixedSpaceNSGAII

CHOICES = {"a": ["x", "y", "z"], "b": ["p", "q"], "c": ["u", "v", "w", "s"], "one": ["only"]}


def _run(sampler: optuna.samplers.BaseSampler) -> list[dict[str, str]]:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        p = {k: trial.suggest_categorical(k, v) for k, v in CHOICES.items()}
        i = [CHOICES[k].index(p[k]) for k in ("a", "b", "c")]
        return float(i[0] + i[1] * i[2]), float(3 - i[0] + i[2])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=48)
    return [t.params for t in study.trials]


def test_the_same_samples_as_optunas_nsga2_and_the_space_is_kept() -> None:
    fixed = FixedSpaceNSGAII(population_size=8, seed=3)
    fixed.expect_params(["a", "b", "c"])  # "one" has a single value: not in the space
    assert _run(fixed) == _run(optuna.samplers.NSGAIISampler(population_size=8, seed=3))
    assert fixed._kept is not None and set(fixed._kept) == {"a", "b", "c"}
    # the last generation's parents were kept (and gave the same samples as Optuna's scan)
    assert fixed._parents is not None and fixed._parents[0][1] == 48 // 8 - 1
    assert len(fixed._parents[1]) == 8


@pytest.mark.parametrize("expected", [None, ["a", "b", "c", "d"]])
def test_nothing_is_kept_unless_the_space_holds_every_expected_parameter(expected) -> None:  # type: ignore[no-untyped-def]
    s = FixedSpaceNSGAII(population_size=8, seed=3)
    if expected is not None:
        s.expect_params(expected)
    assert _run(s) == _run(optuna.samplers.NSGAIISampler(population_size=8, seed=3))
    assert s._kept is None

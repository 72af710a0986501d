"""The samplers and pruners a search can use: one registry each, name -> spec.

A spec knows its options (name, type, default) and builds the Optuna object; Optuna is
imported only when one is built, so the config can be typed and validated without it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.errors import NasError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "SamplerSpec",
    "check_sampler_options",
    "make_pruner",
    "make_sampler",
]


@dataclass(frozen=True)
class Option:
    """One sampler option: its type ("int", "float", "bool", "float?") and default."""

    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class SamplerSpec:
    options: Mapping[str, Option]
    build: Callable[[Mapping[str, Any], int], optuna.samplers.BaseSampler]  # (options, seed)
    help: str

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: o.default for k, o in self.options.items()}


def _nsga2(o: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    from nas.search._fixed_space import FixedSpaceNSGAII

    return FixedSpaceNSGAII(
        population_size=o["population_size"],
        mutation_prob=o["mutation_prob"],
        crossover_prob=o["crossover_prob"],
        seed=seed,
    )


def _tpe(o: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(
        n_startup_trials=o["n_startup_trials"], multivariate=o["multivariate"], seed=seed
    )


def _random(o: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _gp(o: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    from nas.extras import require

    for module in ("scipy", "torch"):  # Optuna's GP runs on torch and scipy
        require(module, purpose="sampler=gp")
    # an infeasible arch's quality is told as inf (its proxy never runs); the GP clips it to
    # the worst finite value and learns feasibility from the constraints: nothing to warn about
    warnings.filterwarnings("ignore", message="Clip non-finite values", category=UserWarning)
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=o["n_startup_trials"])


def _brute(o: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    with warnings.catch_warnings():  # "experimental": it has been stable since Optuna 3.1
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.BruteForceSampler(seed=seed)


SAMPLERS: dict[str, SamplerSpec] = {
    "nsga2": SamplerSpec(
        {
            "population_size": Option("int", 16, 2),
            "mutation_prob": Option("float?", None, 0, 1),
            "crossover_prob": Option("float", 0.9, 0, 1),
        },
        _nsga2,
        "NSGA-II, a genetic algorithm (cost-only searches' default)",
    ),
    "tpe": SamplerSpec(
        {"n_startup_trials": Option("int", 10, 0), "multivariate": Option("bool", True)},
        _tpe,
        "multi-objective TPE",
    ),
    "random": SamplerSpec({}, _random, "uniform random choices"),
    "gp": SamplerSpec(
        {"n_startup_trials": Option("int", 10, 0)},
        _gp,
        "Gaussian-process Bayesian optimisation (the default)",
    ),
    "brute": SamplerSpec({}, _brute, "every arch once (small spaces)"),
}


def _check(name: str, opt: Option, v: Any, where: str) -> Any:
    kind = opt.kind
    if v is None and kind.endswith("?"):
        return None
    if kind == "bool":
        if not isinstance(v, bool):
            raise NasError(f"config: {where}={v!r} must be true or false")
        return v
    is_num = isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "int" and (not isinstance(v, int) or isinstance(v, bool)):
        raise NasError(f"config: {where}={v!r} must be an integer")
    if kind.startswith("float") and (not is_num or not math.isfinite(float(v))):
        raise NasError(f"config: {where}={v!r} must be a number")
    if opt.minimum is not None and v < opt.minimum:
        raise NasError(f"config: {where}={v!r} must be >= {opt.minimum:g}")
    if opt.maximum is not None and v > opt.maximum:
        raise NasError(f"config: {where}={v!r} must be <= {opt.maximum:g}")
    return v if kind == "int" else float(v)


def check_sampler_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The sampler's options with defaults filled in, each checked against its type."""
    if name not in SAMPLERS:
        raise NasError(f"config: sampler.name={name!r}; valid: {', '.join(SAMPLERS)}")
    spec = SAMPLERS[name]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(sorted(["name", *spec.options]))
        raise NasError(
            f"config: unknown key sampler.{unknown[0]}; valid keys under sampler: {valid}"
        )
    merged = {**spec.defaults, **options}
    return {k: _check(k, spec.options[k], v, f"sampler.{k}") for k, v in merged.items()}


def make_sampler(name: str, options: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler ``name`` with checked ``options``."""
    return SAMPLERS[name].build(check_sampler_options(name, options), seed)


def _median() -> optuna.pruners.BasePruner:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)


def _sha() -> optuna.pruners.BasePruner:
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)


def _hyperband() -> optuna.pruners.BasePruner:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1)


# pruner name -> factory; "none" runs every proxy to the end
PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner] | None] = {
    "none": None,
    "median": _median,
    "sha": _sha,
    "hyperband": _hyperband,
}


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name not in PRUNERS:
        raise NasError(f"unknown pruner {name!r}; valid: {', '.join(PRUNERS)}")
    factory = PRUNERS[name]
    if factory is None:
        raise NasError("pruner 'none' builds no pruner")
    return factory()

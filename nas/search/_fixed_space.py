"""NSGA-II that stops recomputing a search space that can no longer change.

Optuna's NSGA-II asks for its relative search space at every trial: the intersection of the
parameters of every completed trial, deep-copied. A nas search suggests every parameter of its
space in every trial (:meth:`nas.search.TrialEvaluation.price`), so once the intersection holds
all of them it stays so for the rest of the run; :class:`FixedSpaceNSGAII` keeps it from then on
(a search of cost-only trials spent about a tenth of its time recomputing it). Until then,
and for a sampler never told its parameters, it is Optuna's NSGA-II unchanged: the same
samples for the same seed.

Importing this module imports Optuna.
"""

from __future__ import annotations

from collections.abc import Iterable

from optuna.distributions import BaseDistribution
from optuna.samplers import NSGAIISampler
from optuna.study import Study
from optuna.trial import FrozenTrial

__all__ = ["FixedSpaceNSGAII"]


class FixedSpaceNSGAII(NSGAIISampler):
    """:class:`optuna.samplers.NSGAIISampler` that keeps its relative search space once it
    holds every parameter given to :meth:`expect_params`."""

    _expected: frozenset[str] | None = None
    _kept: dict[str, BaseDistribution] | None = None

    def expect_params(self, names: Iterable[str]) -> None:
        """The parameters (of more than one value) every trial of the study suggests."""
        self._expected, self._kept = frozenset(names), None

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._kept is not None:
            return dict(self._kept)
        space = super().infer_relative_search_space(study, trial)
        if self._expected is not None and set(space) == self._expected:
            self._kept = dict(space)
        return space

"""NSGA-II that stops recomputing a search space that can no longer change.

Optuna's NSGA-II asks for its relative search space at every trial: the intersection of the
parameters of every completed trial, deep-copied. A nas search suggests every parameter of its
space in every trial (:meth:`nas.search.TrialEvaluation.price`), so once the intersection holds
all of them it stays so for the rest of the run; :class:`FixedSpaceNSGAII` keeps it from then on
(a search of cost-only trials spent about a tenth of its time recomputing it). It also keeps a
generation's parents once the study holds their ids, instead of finding them again among all
the study's trials at every trial. Until then,
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
    # (study id, generation, the parents' trial ids as cached in the study) -> the parents
    _parents: tuple[tuple[int, int, tuple[int, ...]], list[FrozenTrial]] | None = None

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

    def get_parent_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        """Optuna's, except that once a generation's parents are cached in the study (their
        trial ids) the trials are kept here too: Optuna finds them again at every trial by a
        scan of every trial of the study. Kept only while the study's cached ids are the
        same (another worker sharing the study may write them)."""
        ids = study._storage.get_study_system_attrs(study._study_id).get(
            self._get_parent_cache_key_prefix() + str(generation)
        )
        key = (study._study_id, generation, tuple(ids) if ids is not None else ())
        if ids is not None and self._parents is not None and self._parents[0] == key:
            return list(self._parents[1])
        parents = super().get_parent_population(study, generation)
        if ids is not None:  # read from the study: what Optuna returns from now on
            self._parents = (key, list(parents))
        return parents

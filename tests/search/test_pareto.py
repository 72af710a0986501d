from __future__ import annotations

import itertools

import numpy as np
import pytest

from nas.results import hypervolume, hypervolume_history, non_dominated


def _brute_front(v: np.ndarray) -> np.ndarray:
    n = len(v)
    mask = np.ones(n, bool)
    for i, j in itertools.product(range(n), range(n)):
        if np.all(v[j] <= v[i]) and np.any(v[j] < v[i]):
            mask[i] = False
    return mask


@pytest.mark.parametrize("m", [2, 3])
def test_non_dominated_matches_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    for _ in range(20):
        v = rng.integers(0, 6, size=(30, m)).astype(float)  # ties and duplicates on purpose
        assert np.array_equal(non_dominated(v), _brute_front(v))


def test_non_finite_rows_are_never_on_the_front() -> None:
    v = np.array([[1.0, np.inf], [2.0, 2.0], [np.nan, 0.0]])
    assert non_dominated(v).tolist() == [False, True, False]


def test_hypervolume_2d_by_hand() -> None:
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.0, 3.0]])
    # staircase under ref (4, 4): 3*1 + 2*1 + 1*1 = 6
    assert hypervolume(pts, np.array([4.0, 4.0])) == pytest.approx(6.0)
    assert hypervolume(np.array([[5.0, 0.0]]), np.array([4.0, 4.0])) == 0.0


def test_hypervolume_3d_against_a_grid_count() -> None:
    rng = np.random.default_rng(0)
    pts = rng.integers(0, 5, size=(8, 3)).astype(float)
    ref = np.array([5.0, 5.0, 5.0])
    grid = np.stack(np.meshgrid(*[np.arange(5) + 0.5] * 3, indexing="ij"), -1).reshape(-1, 3)
    covered = sum(bool(np.any(np.all(pts <= g, axis=1))) for g in grid)
    assert hypervolume(pts, ref) == pytest.approx(float(covered))


def test_hypervolume_history_is_monotone_and_ignores_infeasible() -> None:
    rng = np.random.default_rng(1)
    v = rng.random((40, 2))
    feas = rng.random(40) > 0.3
    h = hypervolume_history(v, feas)
    assert np.all(np.diff(h) >= -1e-12)
    v2 = v.copy()
    v2[~feas] = -10.0  # an infeasible point, however good, adds nothing
    assert np.allclose(hypervolume_history(v2, feas), h)

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_space():  # type: ignore[no-untyped-def]
    from nas.space import load_space

    return load_space(ROOT / "search_spaces" / "tiny.yaml")


@pytest.fixture(scope="session")
def temporal_space():  # type: ignore[no-untyped-def]
    from nas.space import load_space

    return load_space(ROOT / "search_spaces" / "temporal.yaml")

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


@pytest.fixture(scope="session")
def tiny_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the hand-made cpu-ort table of the tiny space (tests/_tiny_table.py)."""
    from _tiny_table import make_tiny_table

    return make_tiny_table(tmp_path_factory.mktemp("tables"))

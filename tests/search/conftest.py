from __future__ import annotations

from pathlib import Path

import pytest
from _tiny_table import make_tiny_table


@pytest.fixture(scope="session")
def tiny_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_table(tmp_path_factory.mktemp("tables"))


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory: a search's default runs dir (experiments/runs) lands here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

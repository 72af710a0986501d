"""nas.fileio: atomic writes leave the new content or the old one, and no temporary files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nas.fileio import atomic_write_bytes, atomic_write_text


def test_text_written_exactly_and_parents_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "table.csv"
    assert atomic_write_text(path, "x,y\r\n1,é\n") == path
    assert path.read_bytes() == "x,y\r\n1,é\n".encode()  # UTF-8, newlines untranslated
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.csv"]


def test_bytes_replace_old_content(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"old")
    atomic_write_bytes(str(path), b"\x00\x01new")
    assert path.read_bytes() == b"\x00\x01new"
    assert os.listdir(tmp_path) == ["w.bin"]


@pytest.mark.parametrize(
    ("write", "new"), [(atomic_write_text, "new"), (atomic_write_bytes, b"new")]
)
def test_failed_write_keeps_old_content_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[Path, Any], Path], new: Any
) -> None:
    path = tmp_path / "meta.json"
    path.write_text("old", encoding="utf-8")
    seen: list[str] = []

    def broken_replace(src: str, dst: object) -> None:
        seen.append(src)
        assert Path(src).parent == tmp_path  # same folder, so the rename is atomic
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write(path, new)
    assert len(seen) == 1 and not Path(seen[0]).exists()
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["meta.json"]


def test_directory_fsync_failure_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    calls: list[int] = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 1:  # the folder's fsync, after the file's
            raise OSError("not supported")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_text(tmp_path / "x.txt", "ok")
    assert (tmp_path / "x.txt").read_text(encoding="utf-8") == "ok"
    assert len(calls) == 2

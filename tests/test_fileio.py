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


def test_require_writable_dir_names_the_flag_and_the_blocking_path(tmp_path: Path) -> None:
    from nas.errors import NasError
    from nas.fileio import require_writable_dir

    require_writable_dir(tmp_path / "new" / "deeper")  # creatable: fine
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(NasError, match=r"^--vae-out .*file.txt is not a writable folder"):
        require_writable_dir(blocker / "sub", flag="--vae-out")


def test_onnx_output_error_tolerance_scales_with_the_output() -> None:
    import numpy as np

    from nas.errors import NasError
    from nas.export import onnx_output_error

    want = np.array([100.0, -50.0])
    assert onnx_output_error(want + 0.05, want, "x") == pytest.approx(0.05)  # tol 0.1
    with pytest.raises(NasError, match=r"^unet.onnx at \[2\]: ONNX output differs .* \(> 0.1\)"):
        onnx_output_error(want + 0.2, want, "unet.onnx at [2]")


def test_lock_holders_reads_the_kernels_list_without_taking_the_locks(tmp_path: Path) -> None:
    from nas.fileio import claim, lock_holders

    held, free = tmp_path / "a.lock", tmp_path / "b.lock"
    free.touch()
    st = os.stat(tmp_path)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    f = claim(held)
    assert f is not None
    try:
        ino = held.stat().st_ino
        fake = tmp_path / "locks"
        fake.write_text(
            f"1: POSIX  ADVISORY  WRITE 7 {dev}:{free.stat().st_ino} 0 EOF\n"  # not an flock
            f"2: FLOCK  ADVISORY  WRITE 4242 {dev}:{ino} 0 EOF\n"
            f"2: -> FLOCK  ADVISORY  WRITE 99 {dev}:{free.stat().st_ino} 0 EOF\n"  # a waiter
        )
        assert lock_holders([held, free, tmp_path / "none.lock"], locks=str(fake)) == {held: 4242}
        assert lock_holders([held], locks=str(tmp_path / "missing")) is None  # not Linux
        if Path("/proc/locks").is_file():  # the real list: this process holds it
            assert lock_holders([held, free]) == {held: os.getpid()}
            again = claim(free)  # and lock_holders took nothing
            assert again is not None
            again.close()
    finally:
        f.close()
    if Path("/proc/locks").is_file():
        assert lock_holders([held]) == {}


def test_jsonl_records_skip_a_line_cut_short_and_read_a_missing_file_as_empty(
    tmp_path: Path,
) -> None:
    from nas.fileio import jsonl_records

    path = tmp_path / "records.jsonl"
    assert jsonl_records(path) == []
    path.write_text('{"a": 1}\n[2]\n{"b": 2}\n{"c": ', encoding="utf-8")  # crashed mid-append
    assert jsonl_records(path) == [{"a": 1}, {"b": 2}]

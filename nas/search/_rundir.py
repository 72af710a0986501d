"""The run dir on disk: making one, finding one by identity, and one search per dir at a time."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from nas.errors import NasError
from nas.fileio import atomic_write_text
from nas.results import RunInfo
from nas.search._config import SearchConfig
from nas.space import SearchSpace, load_space

__all__ = [
    "HOST",
    "find_run",
    "new_run_dir",
    "run_config",
    "run_lock",
    "run_space",
    "storage_spec",
    "utc_now",
    "write_run_files",
]

HOST = socket.gethostname()


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_config(info: RunInfo) -> tuple[SearchConfig, dict[str, Any]]:
    """The typed config a run was made with, and its plain form (``config.yaml``)."""
    path = info.run_dir / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise TypeError(f"a mapping is expected, not {type(raw).__name__}")
        return SearchConfig.from_dict(raw), raw
    except NasError as e:
        raise NasError(f"{path}: {e}") from None
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NasError(f"{path}: unreadable config ({type(e).__name__}: {first})") from None


def run_space(info: RunInfo) -> SearchSpace:
    """The run's own copy of its space (``space.yaml``)."""
    path = info.run_dir / "space.yaml"
    if not path.is_file():
        raise NasError(f"{info.run_dir} is not a complete run dir: no space.yaml")
    return load_space(path)


def find_run(
    runs_dir: Path, identity: str, warn: Callable[[str], None] | None = None
) -> RunInfo | None:
    """The newest run under ``runs_dir`` with this identity, if any. Run dirs whose run.json
    cannot be read are skipped (and named to ``warn``)."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise NasError(f"search.runs_dir={runs_dir} is a file, not a folder; pick another")
    if not runs_dir.is_dir():
        return None
    found = []
    for p in sorted(runs_dir.glob("*/run.json")):
        try:
            info = RunInfo.load(p.parent)
        except (OSError, NasError) as e:
            if warn is not None:
                warn(f"skipping {p.parent}: {e}")
            continue
        if info.identity == identity:
            found.append(info)
    return max(found, key=lambda i: i.created) if found else None


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """A fresh ``<runs_dir>/<time>-<name>`` folder."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)[:60] or "run"
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        for k in range(1, 1000):
            d = runs_dir / (f"{stamp}-{safe}" if k == 1 else f"{stamp}-{safe}-{k}")
            try:
                d.mkdir()  # atomic: two searches started at once get two dirs
                return d
            except FileExistsError:
                continue
    except OSError as e:
        raise NasError(
            f"cannot create a run dir under search.runs_dir={runs_dir}: {e.strerror}"
        ) from None
    raise NasError(f"too many runs named {safe} at {stamp} under {runs_dir}")


def storage_spec(cfg: SearchConfig) -> str:
    """run.json's storage: ``journal:study.journal`` in the run dir, an absolute journal path,
    or an RDB URL."""
    s = cfg.search.storage
    if s is None:
        return "journal:study.journal"
    if "://" in s:
        return s
    if s.startswith("journal:"):
        s = s[len("journal:") :]
    return "journal:" + str(Path(s).expanduser().resolve())


def write_run_files(d: Path, raw_config: dict[str, Any], space: SearchSpace) -> None:
    """``config.yaml`` and ``space.yaml`` (a copy that does not depend on the folder the space
    came from: a relative backbone path is made absolute)."""
    atomic_write_text(d / "config.yaml", yaml.safe_dump(raw_config, sort_keys=False))
    if not space.source:
        return
    text = Path(space.source).read_text(encoding="utf-8")
    if space.backbone.source.startswith("path:"):
        raw = yaml.safe_load(text)
        raw["backbone"]["path"] = space.backbone.source[len("path:") :]
        text = yaml.safe_dump(raw, sort_keys=False)
    atomic_write_text(d / "space.yaml", text)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One `nas search` per run dir at a time (workers are its children).

    An advisory ``flock`` on ``<run>/.lock``: the kernel releases it when its holder exits,
    however it exits (kill -9 included), so a stale lock cannot exist and nothing has to be
    taken over. The file says who holds it, for the error message.
    """
    import fcntl

    lock = run_dir / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise NasError(
                f"run {run_dir} is in use by {holder}; wait for it or stop it, then re-run"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{HOST}:{os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

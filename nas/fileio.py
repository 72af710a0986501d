"""Atomic file writes: readers see the old file or the new one, never half of either.

Every file ``nas`` and ``profilers`` write for others to read (tables, ``run.json``, arch files,
checkpoints, caches, pages) goes through :func:`atomic_write_text` or :func:`atomic_write_bytes`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "claim",
    "fsync_dir",
    "jsonl_records",
    "lock_holders",
    "locked",
    "read_utf8",
    "require_writable_dir",
    "unwritable_ancestor",
]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines untranslated) to ``path`` atomically; returns the path.

    The text goes to a temporary file in the same folder, which is flushed, fsynced and renamed
    onto ``path``; then the folder is fsynced so the rename survives a crash. Missing parent
    folders are created. On any failure the temporary file is removed and ``path`` is untouched.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path. See :func:`atomic_write_text`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(p.parent)
    return p


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (fsync the folder itself)."""
    # Makes the rename itself durable. Windows cannot open a folder, and some file systems
    # refuse to fsync one: the data is already on disk, so skip silently.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_utf8(path: str | Path) -> str:
    """A file's text (a spreadsheet's byte-order mark is fine); an unreadable file or bytes
    that are not UTF-8 are a one-line ``NasError`` naming the file and line."""
    from nas.errors import NasError

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise NasError(f"{p}: cannot read: {e.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise NasError(
            f"{p}:{line}: is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None


def jsonl_records(path: str | Path) -> list[dict[str, Any]]:
    """The objects of an append-only JSON-lines file, in order: a line that is not one (cut
    short by a crash mid-append) is skipped; a missing file has none."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def unwritable_ancestor(folder: str | Path) -> Path | None:
    """None when ``folder`` can be made and written to; else its nearest existing ancestor
    (or itself), which is not a folder this process may write to."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return None
    return existing


def require_writable_dir(out: str | Path, flag: str = "--out") -> None:
    """Refuse, in one line naming ``flag``, an output folder that cannot be created or written:
    its nearest existing ancestor must be a folder this process may write to."""
    from nas.errors import NasError

    out = Path(out)
    existing = unwritable_ancestor(out)
    if existing is not None:
        raise NasError(
            f"{flag} {out}: cannot be written to ({existing} is not a writable folder); give a "
            "folder you can write to"
        )


def claim(path: str | Path) -> IO[str] | None:
    """Take the lock file ``path`` without waiting: the open file holding an exclusive lock
    (close it to give the lock back), or None when another process holds it. The kernel
    drops the lock when its process dies, so a crashed worker never leaves work claimed.
    Where there are no locks (Windows, some network file systems) every claim succeeds: one
    process per folder there."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    f = p.open("a", encoding="utf-8")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # held by another process
        f.close()
        return None
    except OSError:  # a file system without locks: as on Windows
        return f
    return f


def lock_holders(paths: Iterable[Path], locks: str = "/proc/locks") -> dict[Path, int] | None:
    """Which of ``paths`` a process holds with :func:`claim` or :func:`locked`, and its pid, read
    from the kernel's lock list without touching the locks (taking one to test it could make
    a worker skip that run). None where the list cannot be read (not Linux)."""
    try:
        lines = Path(locks).read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    held: dict[tuple[int, int, int], int] = {}
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 906 fe:00:5505240 0 EOF"
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK":
            continue  # a POSIX lock, or a waiter ("1: -> FLOCK ..."), not a holder
        try:
            major, minor, inode = parts[5].split(":")
            held[(int(major, 16), int(minor, 16), int(inode))] = int(parts[4])
        except ValueError:
            continue
    out: dict[Path, int] = {}
    for p in paths:
        try:
            st = Path(p).stat()
        except OSError:
            continue
        pid = held.get((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
        if pid is not None:
            out[Path(p)] = pid
    return out


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold the lock file ``path`` (waiting for it) for the ``with`` block: work that two
    processes must not do at once, such as appending to a shared file or filling a cache."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as f:  # closing it gives the lock back
        try:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except (ImportError, OSError):  # pragma: no cover - no locks here (see claim)
            pass
        yield

"""Process helpers shared by the search and the profilers."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["exit_with_parent", "pid_alive"]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie, killed but not yet reaped,
    counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def exit_with_parent(parent: int, code: int = 3) -> None:
    """Exit this process at once when ``parent`` is no longer its parent (it died, kill -9
    included, so this child was re-parented): a daemon thread checks now and every 0.5 s. For
    children that must not run on as orphans (local workers, memory probes)."""
    import threading
    import time

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(code)
            time.sleep(0.5)

    if os.getppid() != parent:  # it died before we got here
        os._exit(code)
    threading.Thread(target=watch, daemon=True).start()

"""The README's and the quickstart's example commands say how long they take on a 2-core CPU
(or that they need a GPU), and the CPU-scale training example runs as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from nas.space import load_space, sample_arch

ROOT = Path(__file__).resolve().parents[2]
# a wall time ("under 2 min", "about 15 min", "500 trials, about 10 s", "seconds") or a GPU
TIME = re.compile(r"\b(\d+(\.\d+)? ?(s|min|h)\b|seconds|under a second|a few minutes|needs a GPU)")


def _commands(text: str) -> list[tuple[str, str]]:
    """(command, comment) of every `nas ...` line in the text's bash blocks, with its
    continuation lines joined."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("nas "):
                cmd, _, comment = line.partition("#")
                out.append((cmd.strip(), comment.strip()))
    return out


def _section(page: str, heading: str) -> str:
    """One section of a page, from its heading to the next one."""
    text = (ROOT / page).read_text()
    start = text.index(heading)
    nxt = text.find("\n## ", start + len(heading))
    return text[start : nxt if nxt > 0 else None]


@pytest.mark.parametrize(
    ("page", "heading"),
    [("README.md", "## Quickstart"), ("docs/quickstart.md", "## 5. Search")],
)
def test_every_example_command_states_its_time(page: str, heading: str) -> None:
    commands = _commands(_section(page, heading))
    assert len(commands) >= 8
    untimed = [c for c, comment in commands if not TIME.search(comment)]
    assert not untimed, f"{page}: commands without a wall time or 'needs a GPU': {untimed}"
    gpu = [c for c, comment in commands if "needs a GPU" in comment]
    assert gpu and all("--width-mult" not in c for c in gpu)


@pytest.mark.slow
def test_the_cpu_scale_training_example_runs_as_written(tmp_path: Path) -> None:
    """The README's CPU-scale `nas train` on an arch of the default space, 2 steps instead of
    200 (timing it is the benchmark's job, not the test's)."""
    (cmd,) = [
        c
        for c, comment in _commands(_section("README.md", "## Quickstart"))
        if c.startswith("nas train") and "CPU scale" in comment
    ]
    arch = sample_arch(load_space("temporal"), np.random.default_rng(0))
    arch.save(tmp_path / "a.yaml")
    argv = shlex.split(cmd)[1:]
    argv[argv.index("--arch") + 1] = str(tmp_path / "a.yaml")
    argv[argv.index("--steps") + 1] = "2"
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert (tmp_path / "run" / "checkpoints" / "step_0000002").is_dir()

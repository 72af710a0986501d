"""The nas command as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cost import space_summary
from nas.space import load_space


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nas", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_help_teaches_with_examples() -> None:
    top = run("--help")
    assert top.returncode == 0
    assert "space" in top.stdout and "examples:" in top.stdout
    assert "nas space --space search_spaces/temporal.yaml" in top.stdout
    sub = run("space", "--help")
    assert sub.returncode == 0
    assert "--json" in sub.stdout and "examples:" in sub.stdout
    assert run().returncode == 0  # no command: prints help


def test_space_json_matches_the_library(root: Path) -> None:
    out = run("space", "--space", str(root / "search_spaces" / "temporal.yaml"), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    expected = space_summary(load_space(root / "search_spaces" / "temporal.yaml"))
    expected["space"]["source"] = data["space"]["source"]
    assert data == json.loads(json.dumps(expected))
    assert data["size"] == 15_045_919_506_432  # 3,761,479,876,608 UNets x 4 decode choices
    assert data["backbone"]["params"] == 336_555_332
    assert len(data["slots"]) == 12


def test_space_text_summary(tmp_path: Path) -> None:
    out = run("space", "--space", "search_spaces/temporal.yaml", cwd=tmp_path)  # bundled fallback
    assert out.returncode == 0, out.stderr
    for needle in (
        "Space size       15,045,919,506,432 arches",
        "all-attn1d arch",
        "up.1.2",
        "Backbone   ref:pruned: 336.56M params",
    ):
        assert needle in out.stdout


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("name: [unclosed", "invalid YAML at line 1"),
        ("name: x\nbackbone: {ref: nope}\ngeometry: {}\nslots: {}\n", "backbone.ref: 'nope'"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path: Path, content: str, needle: str) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(content)
    out = run("space", "--space", str(p))
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {p}: ") and needle in lines[0]
    assert "Traceback" not in out.stderr


def test_missing_file_and_bad_flags(tmp_path: Path) -> None:
    out = run("space", "--space", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "file not found" in out.stderr and "Traceback" not in out.stderr
    out = run("space")
    assert out.returncode == 2 and "--space" in out.stderr


def test_search_overrides_may_follow_flags() -> None:
    out = run("search", "--space", "tiny", "search.trials=3", "--no-progress", "device=cpu-ort",
              "--print-config")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "  trials: 3\n" in out.stdout and "  name: cpu-ort\n" in out.stdout
    bad = run("search", "--space", "tiny", "--no-progress", "device=cpu-ort", "--bogus")
    assert bad.returncode == 2 and "unrecognized arguments: --bogus" in bad.stderr
    assert "device=cpu-ort" not in bad.stderr  # only the token it cannot take is named
    other = run("space", "--space", "tiny", "frames=2")  # only search takes overrides
    assert other.returncode == 2 and "unrecognized arguments: frames=2" in other.stderr


def test_cli_functions_stay_small() -> None:
    """One small function per subcommand (the parser, the command): none over 100 lines."""
    import ast

    import nas.cli

    tree = ast.parse(Path(nas.cli.__file__).read_text(encoding="utf-8"))
    sizes = {
        n.name: (n.end_lineno or n.lineno) - n.lineno + 1
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef)
    }
    assert {k: v for k, v in sizes.items() if v > 100} == {}
    assert {"_add_search_parser", "_add_train_parser", "cmd_search"} <= set(sizes)

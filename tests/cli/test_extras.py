"""Extras: a slim core, and a missing extra is one `error:` line naming the pip command."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from nas.extras import EXTRAS, MissingExtra, missing_extra, require
from nas.space import load_space, sample_arch

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "search_spaces" / "tiny.yaml")


def _project() -> dict:  # type: ignore[type-arg]
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def _name(req: str) -> str:
    return re.split(r"[<>=\[ ;]", req, maxsplit=1)[0].lower()


def _closure(extras: dict[str, list[str]], extra: str) -> set[str]:
    """The distributions an extra installs, through nas-video[...] references."""
    out: set[str] = set()
    for req in extras[extra]:
        m = re.fullmatch(r"nas-video\[(.+)\]", req)
        if m:
            for inner in m.group(1).split(","):
                out |= _closure(extras, inner.strip())
        else:
            out.add(_name(req))
    return out


def test_pyproject_core_is_slim_and_each_module_is_in_its_extra() -> None:
    project = _project()
    core = {_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    heavy = {dist for _, dist in EXTRAS.values()}
    assert not core & heavy, core & heavy  # nothing that builds a model is a core dependency
    assert {"optuna", "hydra-core", "plotly", "numpy", "pyyaml"} <= core
    for module, (extra, dist) in EXTRAS.items():
        assert dist in _closure(extras, extra), (module, extra)
    every = set().union(*(_closure(extras, e) for e in extras if e not in ("all", "dev")))
    assert _closure(extras, "all") == every
    torch = [r for r in extras["train"] if _name(r) == "torch"]
    assert torch == ["torch>=2.4,<2.14"]  # the bound that keeps pip off a CUDA build


def test_require_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("json", extra="train") is sys.modules["json"]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtra) as e:
        require("onnxruntime", purpose="nas export --format onnx")
    msg = str(e.value)
    assert msg.startswith("nas export --format onnx needs onnxruntime, which is not installed")
    assert "pip install 'nas-video[onnx]'" in msg and "pip install -e '.[onnx]'" in msg
    assert "\n" not in msg
    err = missing_extra(ModuleNotFoundError("x", name="sklearn.datasets"))
    assert err is not None and "scikit-learn" in str(err) and "nas-video[train]" in str(err)
    assert missing_extra(ModuleNotFoundError("x", name="not_an_extra")) is None


def _one_error_line(err: str, extra: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert f"pip install 'nas-video[{extra}]'" in lines[0], err
    return lines[0]


@pytest.mark.parametrize(
    ("hidden", "fmt", "extra"),
    [
        ("onnxruntime", "onnx", "onnx"),
        ("coremltools", "coreml", "coreml"),
        ("torch", "onnx", "onnx"),  # the format's extra brings torch too
    ],
)
def test_export_without_its_extra_is_one_line(
    hidden: str,
    fmt: str,
    extra: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arch = sample_arch(load_space(TINY), np.random.default_rng(0))
    arch.save(tmp_path / "a.yaml")
    monkeypatch.setitem(sys.modules, hidden, None)
    out = tmp_path / ("a.onnx" if fmt == "onnx" else "a.mlpackage")
    rc = main(["export", "--arch", str(tmp_path / "a.yaml"), "--format", fmt, "--out", str(out)])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err, extra)
    assert f"nas export --format {fmt} needs {hidden}" in line
    assert not out.exists()


def test_train_and_proxy_search_without_torch_are_one_line_cost_only_works(
    tmp_path: Path,
    tiny_tables: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arch = sample_arch(load_space(TINY), np.random.default_rng(0))
    arch.save(tmp_path / "a.yaml")
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["train", "--arch", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "t")]) == 2
    assert "nas train needs torch" in _one_error_line(capsys.readouterr().err, "train")
    runs = tmp_path / "runs"
    base = [
        "search", "--space", TINY, "--no-progress", "device=cpu-ort",
        f"device.table={tiny_tables}", f"search.runs_dir={runs}", "search.trials=3",
    ]  # fmt: skip
    assert main(base) == 2
    assert "the quality proxy (proxy=train" in _one_error_line(capsys.readouterr().err, "train")
    assert not runs.exists()  # refused before a run dir was made
    assert main([*base, "experiment=cost_only"]) == 0  # the slim core's search needs no torch
    capsys.readouterr()
    (run,) = runs.iterdir()
    assert main(["report", str(run)]) == 0


def test_postgres_storage_without_its_driver_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nas.search import open_storage

    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(MissingExtra, match=re.escape("pip install 'nas-video[postgres]'")):
        open_storage("postgresql://nas@localhost:5432/nas", tmp_path)

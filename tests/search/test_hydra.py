"""Hydra at the edge: a --config-dir holding only the user's files, layered over the shipped
config; -m sweeps, one run dir per combination."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _search_helpers import TINY, tiny_overrides

from nas.cli import main
from nas.errors import NasError
from nas.search import compose_config, expand_sweep


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture()
def my_conf(tmp_path: Path) -> Path:
    """A user folder with three files and nothing else: a new experiment, a new sampler
    option and a replacement for a shipped device file."""
    conf = tmp_path / "my conf, v2"  # a space and a comma: Hydra's override grammar
    _write(
        conf / "experiment" / "tight.yaml",
        "# @package _global_\ndefaults:\n  - override /sampler: tpe\n"
        "constraints:\n  latency_s: 3.0\nsearch:\n  trials: 200\n",
    )
    _write(conf / "sampler" / "mytpe.yaml", "name: tpe\nn_startup_trials: 5\n")
    _write(conf / "device" / "iphone16pm.yaml", "name: iphone16pm\ntable: null\nquantile: p90\n")
    return conf


def test_a_folder_of_overrides_is_layered_on_the_shipped_config(my_conf: Path) -> None:
    cfg, raw = compose_config(["experiment=tight"], conf_dir=my_conf)
    assert cfg.sampler.name == "tpe" and cfg.constraints.latency_s == 3.0
    assert cfg.search.trials == 200
    assert cfg.proxy.name == "train" and cfg.search.seed == 0  # the rest is shipped
    assert "hydra" not in raw
    cfg, _ = compose_config(["sampler=mytpe"], conf_dir=my_conf)
    assert cfg.sampler.options["n_startup_trials"] == 5
    assert cfg.device.quantile == "p90"  # the user's file replaces the shipped one
    cfg, _ = compose_config(["device=cpu-ort"], conf_dir=my_conf)
    assert cfg.device.name == "cpu-ort" and cfg.device.quantile == "p50"  # shipped option
    shipped, _ = compose_config([])
    assert shipped.device.quantile == "p50"  # nothing leaks into the shipped config


def test_the_users_config_yaml_is_the_primary_config(my_conf: Path) -> None:
    from nas.search import config_dir

    text = (config_dir() / "config.yaml").read_text().replace("trials: 60", "trials: 7")
    _write(my_conf / "config.yaml", text.replace("- sampler: gp", "- sampler: mytpe"))
    cfg, _ = compose_config([], conf_dir=my_conf)
    assert cfg.search.trials == 7 and cfg.sampler.options["n_startup_trials"] == 5


def test_a_run_dirs_config_composes_that_run(tmp_path: Path, tiny_tables: Path) -> None:
    from nas.search import run_search

    cfg, raw = compose_config(
        tiny_overrides(tiny_tables, "experiment=cost_only", "search.trials=3", "search.seed=4")
    )
    res = run_search(TINY, cfg, raw, progress=False, log=lambda _m: None)  # type: ignore[arg-type]
    again, _ = compose_config(["search.trials=5"], conf_dir=res.run_dir)
    assert again.search.seed == 4 and again.search.trials == 5
    assert again.device.table == str(tiny_tables)


def test_config_dir_mistakes_are_one_line(my_conf: Path, tmp_path: Path) -> None:
    with pytest.raises(NasError, match="not a folder"):
        compose_config([], conf_dir=tmp_path / "nope")
    with pytest.raises(NasError, match=r"unknown sampler 'bogus'; valid: .*mytpe"):
        compose_config(["sampler=bogus"], conf_dir=my_conf)
    with pytest.raises(NasError, match="is a sweep: pass -m"):
        compose_config(["sampler=tpe,nsga2"])


def test_expand_sweep_is_the_cartesian_product_in_order() -> None:
    assert expand_sweep(["a=1", "b=2"]) == [["a=1", "b=2"]]
    assert expand_sweep(["sampler=tpe,nsga2", "search.seed=range(0,2)", "x=1"]) == [
        ["sampler=tpe", "search.seed=0", "x=1"],
        ["sampler=tpe", "search.seed=1", "x=1"],
        ["sampler=nsga2", "search.seed=0", "x=1"],
        ["sampler=nsga2", "search.seed=1", "x=1"],
    ]
    with pytest.raises(NasError, match=r"^-m: "):
        expand_sweep(["a=[1,"])


def test_multirun_makes_one_run_dir_each_and_resumes_them(
    in_tmp: Path, tiny_tables: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "search", "--space", TINY, "--no-progress", "-m",
        *tiny_overrides(tiny_tables, "experiment=cost_only", "search.trials=4"),
        "sampler=tpe,random", "search.seed=0,1",
    ]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("=== run ") == 4 and "=== run 4 of 4" in out
    runs = sorted((in_tmp / "experiments" / "runs").iterdir())
    assert len(runs) == 4
    settings = {
        (s["sampler"], s["seed"])
        for s in (json.loads((r / "run.json").read_text())["settings"] for r in runs)
    }
    assert settings == {("tpe", 0), ("tpe", 1), ("random", 0), ("random", 1)}
    assert {r.name.split("-", 2)[2] for r in runs} == {
        "tiny-tpe-0", "tiny-tpe-1", "tiny-random-0", "tiny-random-1"
    }  # fmt: skip
    assert main(args) == 0  # the same command again: each run resumes, no new run dir
    assert out.count("resuming") == 0 and capsys.readouterr().out.count("resuming") == 4
    assert len(list((in_tmp / "experiments" / "runs").iterdir())) == 4
    assert main([*args, "--resume", str(runs[0])]) == 2
    assert main([*args, "--study", "s"]) == 2  # four runs cannot share one study
    err = capsys.readouterr().err
    assert "--resume takes one run dir" in err and "share the study 's'" in err

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nas.errors import NasError
from nas.search import compose_config


def test_defaults_compose_to_the_documented_search() -> None:
    cfg, raw = compose_config()
    assert cfg.device.name == "iphone16pm"
    assert cfg.sampler.name == "gp"  # the sampler study's winner (docs/benchmarks.md)
    assert cfg.proxy.name == "train"
    assert cfg.search.objectives == ("latency", "quality")
    assert cfg.constraints.latency_s == 4.0 and cfg.constraints.memory_mb == "device"
    assert raw["search"]["trials"] == cfg.search.trials


def test_quality_unit_names_what_the_proxy_measures() -> None:
    """The axis reads "quality (proxy loss)" only for proxies whose value is a loss."""
    from nas.quality import PROXIES, PROXY_UNITS
    from nas.search import objectives_of

    assert set(PROXY_UNITS) == set(PROXIES)  # a new proxy must say what its value is
    units = {}
    for name in PROXIES:
        cfg, _ = compose_config([f"proxy={name}"])
        (quality,) = [o for o in objectives_of(cfg) if o.name == "quality"]
        units[name] = quality.unit
    assert units["train"] == "proxy loss"
    assert units["synflow"] == "-log(1+SynFlow)" and units["naswot"] == "-log|K_H|"
    assert all(u != "proxy loss" for n, u in units.items() if n != "train")


def test_overrides_groups_and_experiments() -> None:
    cfg, raw = compose_config(
        [
            "device=cpu-ort",
            "sampler=tpe",
            "search.trials=7",
            "constraints.latency_s=5",
            "sampler.n_startup_trials=3",
            "proxy.options.steps=4",
        ]
    )
    assert (cfg.device.name, cfg.sampler.name, cfg.search.trials) == ("cpu-ort", "tpe", 7)
    assert cfg.constraints.latency_s == 5.0
    assert cfg.sampler.options["n_startup_trials"] == 3
    assert cfg.proxy.options["steps"] == 4
    assert raw["sampler"]["name"] == "tpe"
    cfg, _ = compose_config(["experiment=cost_only"])
    assert cfg.proxy.name == "none" and cfg.search.objectives == ("latency", "memory")
    assert cfg.sampler.name == "nsga2"  # a GP ask would cost more than a cost-only trial
    cfg, _ = compose_config(["experiment=cost_only", "sampler=tpe"])  # the command line wins
    assert cfg.sampler.name == "tpe"


def test_search_tests_pin_nsga2_unless_they_pick_a_sampler(tmp_path: Path) -> None:
    from _search_helpers import tiny_overrides

    def name(*extra: str) -> str:
        return compose_config(tiny_overrides(tmp_path, *extra))[0].sampler.name

    assert name() == "nsga2" and name("sampler=tpe") == "tpe"
    assert name("sampler=default") == "gp" and name("experiment=quick") == "random"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["device=nokia"], "unknown device 'nokia'; valid: cpu-ort, cuda, iphone14pm"),
        (["sampler=cmaes"], "unknown sampler 'cmaes'; valid: brute, gp, nsga2, random, tpe"),
        (["experiment=nope"], "unknown experiment 'nope'; valid: cost_only, quick"),
        (["search.trails=5"], "unknown config key 'search.trails'; valid keys under search:"),
        (
            ["sampler=tpe", "sampler.population_size=8"],
            "valid keys under sampler: multivariate, n_startup_trials, name",
        ),
        (["constraints.latency=5"], "valid keys under constraints: latency_ms_step, latency_s"),
        (["search.trials=0"], "search.trials=0 must be an integer >= 1"),
        (["search.trials=many"], "search.trials='many' must be an integer >= 1"),
        (["constraints.latency_s=-1"], "constraints.latency_s=-1 must be > 0"),
        (["search.objectives=[latency,speed]"], "choose one or more of latency, memory, quality"),
        (["proxy=none"], "search.objectives has quality but proxy=none"),
        (["proxy=naswot", "proxy.pruner=sha"], "proxy.pruner=sha needs a proxy with"),
        (["proxy.pruner=always"], "proxy.pruner='always'; valid: none, median, sha, hyperband"),
        (["search.latency=frame"], "search.latency='frame'; valid: video, step"),
        (["device.quantile=p99"], "device.quantile='p99'; valid: p50, p90"),
        (["trials"], "override 'trials' is not key=value"),
    ],
)
def test_bad_overrides_are_one_line_errors(override: list[str], message: str) -> None:
    with pytest.raises(NasError) as e:
        compose_config(override)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_cli_bad_override_exits_2_without_traceback() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "nas", "search", "search.trails=5"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error: unknown config key 'search.trails'")
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    assert main(["search", "--print-config", "sampler=random", "--trials", "9"]) == 0
    out = capsys.readouterr().out
    assert "name: random" in out and "trials: 9" in out

"""Issue 15 item 5: the search records its proxy's seed-to-seed noise per trial (trials.csv)
and the dashboard draws it as error bars on the quality axis."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from _report_helpers import make_run

from nas.errors import NasError
from nas.report import figures, pareto_info, render_html


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "trials.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_trials_record_the_proxy_noise_and_the_front_draws_it(
    tiny_tables: Path, runs_dir: Path
) -> None:
    run = make_run(
        tiny_tables, runs_dir, "proxy=params", "sampler=random", "search.trials=12",
        "+proxy.noise=0.05", "name=noisy",
    )  # fmt: skip
    rows = _rows(run)
    with_q = [r for r in rows if r["quality"] not in ("", "inf")]
    assert with_q and all(float(r["quality_noise"]) == 0.05 for r in with_q)
    assert all("proxy.noise" in r["quality_noise_source"] for r in with_q)
    assert all(r["quality_noise"] == "" for r in rows if r not in with_q)
    info = pareto_info(run)
    bars = [t["error_y"] for fig in figures(info).values() for t in fig["data"] if "error_y" in t]
    assert bars and all(set(b["array"]) == {0.05} for b in bars)
    assert "seed-to-seed std" in render_html(info)


def test_no_noise_no_bars(tiny_tables: Path, runs_dir: Path) -> None:
    run = make_run(
        tiny_tables, runs_dir, "proxy=params", "sampler=random", "search.trials=6",
        "+proxy.noise=none", "name=quiet",
    )  # fmt: skip
    assert "quality_noise" not in _rows(run)[0]
    info = pareto_info(run)
    assert not any("error_y" in t for fig in figures(info).values() for t in fig["data"])
    assert "seed-to-seed" not in render_html(info)


def test_noise_from_a_validation_summary_and_bad_settings(tmp_path: Path) -> None:
    from nas.quality import proxy_noise
    from nas.search import compose_config

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({
        "config": {"seeds": 2}, "arches": [{}, {}, {}],
        "proxies": {"train": {"noise_std": 0.0123}},
    }))  # fmt: skip
    n = proxy_noise("train", {}, "temporal", str(summary))
    assert n is not None and n.std == 0.0123 and "3 arches x 2 proxy seeds" in n.source
    with pytest.raises(NasError, match="no noise_std for proxy 'naswot'"):
        proxy_noise("naswot", {}, "temporal", str(summary))
    with pytest.raises(NasError, match=r"proxy\.noise"):
        compose_config(["proxy=train", "+proxy.noise=-1"])
    with pytest.raises(NasError, match=r"proxy\.noise"):
        compose_config(["proxy=train", "+proxy.noise=/no/such/summary.json"])
    # the shipped default applies only to the settings it was measured with
    assert proxy_noise("train", {"steps": 16, "seed": 0}, "nonexistent-space") is None


def test_the_default_search_gets_the_shipped_measurement() -> None:
    from nas.quality import proxy_noise
    from nas.search import compose_config

    cfg = compose_config([])[0]  # proxy=train as shipped, on the default space
    n = proxy_noise(cfg.proxy.name, cfg.proxy.options, "temporal", cfg.proxy.noise)
    assert n is not None and 0 < n.std < 1 and "benchmarks/proxy_noise.py" in n.source
    # other settings than the measured ones get no borrowed figure
    assert proxy_noise("train", {**cfg.proxy.options, "steps": 64}, "temporal") is None
    assert proxy_noise("train", {**cfg.proxy.options, "colours": "random"}, "temporal") is None


def test_seed_noise_takes_out_the_seeds_common_shift() -> None:
    """A seed that moves every arch alike reorders nothing: it is not noise between arches
    (the training proxy's seed 2 reads about 0.035 lower on every arch)."""
    import numpy as np

    from nas.quality import seed_noise

    rng = np.random.default_rng(0)
    arch = rng.normal(1.0, 0.1, size=(8, 1))
    resid = rng.normal(0, 0.005, size=(8, 3))
    flat = arch + resid
    shifted = flat + np.array([0.0, 0.01, -0.035])  # per-seed offsets, the same for every arch
    noise, pooled = seed_noise(shifted)
    assert noise == pytest.approx(seed_noise(flat)[0])  # the shift changes nothing
    assert pooled > 3 * noise  # the plain pooled std counts it
    assert 0.002 < noise < 0.01
    # two seeds: the spread of the arches' seed-to-seed differences
    d = shifted[:, 0] - shifted[:, 1]
    assert seed_noise(shifted[:, :2])[0] == pytest.approx(np.sqrt(np.var(d, ddof=1) / 2))
    # an arch with a failed value is left out, not propagated
    broken = shifted.copy()
    broken[3, 1] = np.inf
    assert seed_noise(broken)[0] == pytest.approx(seed_noise(np.delete(shifted, 3, axis=0))[0])
    with pytest.raises(NasError, match="seeds>=2"):
        seed_noise(shifted[:, :1])

"""Finished `nas validate latency` folders scored with and without the backbone anchored on its
own measurement (no timing here: it reads the folders and runs in seconds).

The cost model predicts a step as the sum of the backbone's block rows, the temporal rows and
the glue. Each piece's table also holds the `unet` row: the backbone alone timed as one network
in the same stretch as the rows. Anchored, an arch is predicted as that measurement plus its
temporal rows: predicted + (unet row - (backbone rows + glue)). Nothing is fitted on the
validated arches; the difference per piece comes from the table made right before it. Since
b94f783 the cost model anchors (a folder's `predicted_ms` is anchored once the validate command
has been rerun on it, which measures nothing new); this takes the anchor out again. Prints,
per folder, the pooled Kendall tau, RMSPE and bias both ways, and each piece's bias.

    python benchmarks/latency_anchor.py experiments/runs/vl-f4 experiments/runs/vl-f16
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from dataclasses import replace
from pathlib import Path

from scipy.stats import kendalltau

from nas.cost import CostModel, Table
from nas.space import load_space, with_geometry


def _geometry(text: str) -> dict[str, object]:
    """'batch=1, cfg=False, frames=16, ...' (selection.json) -> keyword arguments."""
    out: dict[str, object] = {}
    for part in text.split(","):
        k, v = (s.strip() for s in part.split("="))
        out[k] = v == "True" if v in ("True", "False") else int(v)
    return out


def _scores(pred: list[float], meas: list[float]) -> str:
    err = [(p - m) / m * 100 for p, m in zip(pred, meas, strict=True)]
    rmspe = statistics.fmean(e * e for e in err) ** 0.5
    within = sum(abs(e) <= 10 for e in err)
    tau = kendalltau(pred, meas)[0]
    return (f"Kendall {tau:.3f}  within 10 % {within}/{len(err)}  RMSPE {rmspe:.2f} %  "
            f"bias {statistics.fmean(err):+.2f} %")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--space", default="search_spaces/temporal.yaml")
    args = ap.parse_args()
    space = replace(load_space(args.space), pipeline=None)  # a UNet alone, as validated
    for folder in args.folders:
        sel = json.loads((folder / "selection.json").read_text())
        vspace = with_geometry(space, **_geometry(sel["geometry"]))
        rows = list(csv.DictReader((folder / "validate_latency.csv").open()))
        tables = {r.get("table") or "table" for r in rows}
        shift = {}
        for t in sorted(tables):
            residual = CostModel(vspace, Table.load(folder / t)).unet_residual_ms
            shift[t] = residual or 0.0
        meas = [float(r["measured_ms"]) for r in rows]
        anchored = [float(r["predicted_ms"]) for r in rows]
        plain = [p - shift[r.get("table") or "table"] for p, r in zip(anchored, rows, strict=True)]
        print(f"{folder} ({len(rows)} arches, {sel['geometry']})")
        print(f"  rows + network rows:    {_scores(plain, meas)}")
        print(f"  anchored on unet row:   {_scores(anchored, meas)}")
        for t in sorted(tables):
            idx = [i for i, r in enumerate(rows) if (r.get("table") or "table") == t]
            b0 = statistics.fmean((plain[i] - meas[i]) / meas[i] * 100 for i in idx)
            b1 = statistics.fmean((anchored[i] - meas[i]) / meas[i] * 100 for i in idx)
            print(f"  piece {t}: {len(idx)} arches, unet row {shift[t]:+.1f} ms off its rows, "
                  f"bias {b0:+.2f} % -> {b1:+.2f} %")  # fmt: skip


if __name__ == "__main__":
    main()

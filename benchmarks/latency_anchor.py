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

from nas.cost import CostModel, Table
from nas.space import load_space, with_geometry
from profilers import summarize


def _geometry(text: str) -> dict[str, object]:
    """'batch=1, cfg=False, frames=16, ...' (selection.json) -> keyword arguments."""
    out: dict[str, object] = {}
    for part in text.split(","):
        k, v = (s.strip() for s in part.split("="))
        out[k] = v == "True" if v in ("True", "False") else int(v)
    return out


def _scores(rows: list[dict[str, str]], pred: list[float]) -> str:
    """The latency line of `nas validate latency` (profilers.summarize) with ``pred``."""
    recs = [{**r, "predicted_ms": p} for r, p in zip(rows, pred, strict=True)]
    st = summarize(recs)["latency (rows + network rows)"]
    return (f"Kendall {st['kendall_tau']:.3f} [{st['tau_lo']:.2f}, {st['tau_hi']:.2f}]  "
            f"within 10 % {st['within_10pct']:.0%}  RMSPE {st['rmspe_pct']:.2f} %  "
            f"bias {st['bias_pct']:+.2f} %")  # fmt: skip


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
        piece = [r.get("table") or "table" for r in rows]  # folders before per-piece tables
        shift = {}
        for t in sorted(set(piece)):
            residual = CostModel(vspace, Table.load(folder / t)).unet_residual_ms
            shift[t] = residual or 0.0
        meas = [float(r["measured_ms"]) for r in rows]
        anchored = [float(r["predicted_ms"]) for r in rows]
        plain = [p - shift[t] for p, t in zip(anchored, piece, strict=True)]
        print(f"{folder} ({len(rows)} arches, {sel['geometry']})")
        print(f"  rows + network rows:    {_scores(rows, plain)}")
        print(f"  anchored on unet row:   {_scores(rows, anchored)}")
        for t in sorted(shift):
            idx = [i for i, name in enumerate(piece) if name == t]
            b0 = statistics.fmean((plain[i] - meas[i]) / meas[i] * 100 for i in idx)
            b1 = statistics.fmean((anchored[i] - meas[i]) / meas[i] * 100 for i in idx)
            print(f"  piece {t}: {len(idx)} arches, unet row {shift[t]:+.1f} ms off its rows, "
                  f"bias {b0:+.2f} % -> {b1:+.2f} %")  # fmt: skip


if __name__ == "__main__":
    main()

"""A corpus of malformed inputs, each run through ``nas`` as a user would run it.

Every case writes its bad file(s) into a fresh folder, runs ``nas.cli.main`` in-process and
checks what a user mistake must give: exit code 2, exactly one line on stderr starting with
``error: `` (no traceback), the expected words, and nothing on disk changed. A few cases run
again in a subprocess, where the real interpreter's stack and argv decoding apply.

Cases are data: ``(id, files, argv, needle)``. ``files`` maps a path under the folder to its
content: text, bytes, :data:`GOOD_RUN` (a copy of a real ``nas train`` run folder) or an
edit of a file written before it (:class:`Truncate`, :class:`Delete`, :class:`Move`,
:class:`Flip`). ``{tmp}`` in argv is the folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nas.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "search_spaces" / "tiny.yaml")


@dataclass(frozen=True)
class Truncate:
    """Keep the first ``keep`` bytes of a file written before."""

    keep: int


@dataclass(frozen=True)
class Delete:
    """Remove a file (or folder) written before."""


@dataclass(frozen=True)
class Move:
    """Rename a file (or folder) written before to ``to`` (relative to the case folder)."""

    to: str


@dataclass(frozen=True)
class Flip:
    """Invert the byte at ``offset`` from the end of a file written before."""

    offset: int


GOOD_RUN = "<a nas train run: 2 steps, one checkpoint at step 2>"
Content = str | bytes | Truncate | Delete | Move | Flip

# ---------------------------------------------------------------------------------------------
# the good files the bad ones are made from
# ---------------------------------------------------------------------------------------------

KEY = "conv_in[cin=4,k=3]@16x4x8x8/b1/fp32"
HEADER = (
    "key,op,options,channels,frames,height,width,batch,precision,source,latency_ms_p10,"
    "latency_ms_p50,latency_ms_p90,repeats,peak_mem_mb,weight_bytes,flops,compute_unit,reason,"
    "measured_at"
)
_CELLS = {
    "key": f'"{KEY}"', "op": "conv_in", "options": '"cin=4,k=3"', "channels": "16",
    "frames": "4", "height": "8", "width": "8", "batch": "1", "precision": "fp32",
    "source": "measured", "latency_ms_p10": "1.0", "latency_ms_p50": "2.0",
    "latency_ms_p90": "3.0", "repeats": "5", "peak_mem_mb": "1.5", "weight_bytes": "1024",
    "flops": "2048", "compute_unit": "CPU", "reason": "", "measured_at": "2026-01-01T00:00:00",
}  # fmt: skip


def table_row(**cells: str) -> str:
    """A good ``table.csv`` line with ``cells`` replaced."""
    return ",".join({**_CELLS, **cells}.values())


def table(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


GOOD_TABLE = table(table_row())
META = {"device": {"name": "cpu-ort", "precision": "fp32", "memory_budget_mb": 100}}
GOOD_META = json.dumps(META)


def meta(**device: Any) -> str:
    """``meta.json`` with ``device`` fields replaced (None: removed)."""
    dev = {k: v for k, v in {**META["device"], **device}.items() if v is not None}
    return json.dumps({**META, "device": dev})


def lab(*lines: str, header: str = "key,latency_ms_p50") -> str:
    """An import CSV."""
    return "\n".join([header, *lines]) + "\n"


def lab_with(col: str, p50: str, value: str) -> str:
    """An import CSV of one row: its ``latency_ms_p50`` and one more column."""
    return lab(f'"{KEY}",{p50},{value}', header=f"key,latency_ms_p50,{col}")


GOOD_LAB = lab(f'"{KEY}",1.5')
IMPORT = ("profile", "import", "--device", "cpu-ort", "--out", "{tmp}/tbl", "{tmp}/lab.csv")
IMPORT_NEW = ("profile", "import", "--device", "cpu-ort", "--out", "{tmp}/new", "{tmp}/lab.csv")


def bad_table(csv: str | bytes = GOOD_TABLE, meta_json: str | bytes | None = GOOD_META) -> Any:
    """Files for importing a good CSV into the table folder ``tbl`` holding these files."""
    files: dict[str, Content] = {"lab.csv": GOOD_LAB, "tbl/table.csv": csv}
    if meta_json is not None:
        files["tbl/meta.json"] = meta_json
    return files


def bad_lab(text: str | bytes) -> Any:
    return {"lab.csv": text}


ARCH = """\
space: {name: tiny}
choices:
  down.0.0: none
  down.1.0: none
  mid.1.0: none
  up.1.0: none
  up.1.1: none
  up.0.0: none
  up.0.1: none
"""
RUN_ARCH = ARCH.replace("down.1.0: none", "down.1.0: {op: conv1d, kernel: 3}")
SPACE = Path(TINY).read_text()
TRAIN = ("train", "--arch", "{tmp}/arch.yaml", "--space", TINY, "--out", "{tmp}/run")
TRAIN_NO_SPACE = ("train", "--arch", "{tmp}/arch.yaml", "--out", "{tmp}/run")
RESUME = (
    "train", "--arch", "{tmp}/run/arch.yaml", "--space", TINY, "--out", "{tmp}/run", "--resume",
    "--steps", "3", "--batch-size", "1", "--checkpoint-every", "2", "--no-progress",
)  # fmt: skip
STEP = "run/checkpoints/step_0000002"
DEEP_LIST = "[" * 20_000 + "]" * 20_000
DEEP_MAP = "a: {" * 20_000 + "}" * 20_000

# ---------------------------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------------------------

# fmt: off
CASES: list[tuple[str, Mapping[str, Content], tuple[str, ...], str]] = [
    # --- space files (nas space) ---
    ("space_missing", {}, ("space", "--space", "{tmp}/nope.yaml"), "file not found"),
    ("space_is_a_folder", {"s/x.txt": "x"}, ("space", "--space", "{tmp}/s"), "is a directory"),
    ("space_not_utf8", {"s.yaml": b"name: \xff\xfe tiny\n"}, ("space", "--space", "{tmp}/s.yaml"),
     "is not UTF-8 text"),
    ("space_latin1", {"s.yaml": SPACE.replace("tiny space", "caf\xe9").encode("latin-1")},
     ("space", "--space", "{tmp}/s.yaml"), "is not UTF-8 text"),
    ("space_nul_byte", {"s.yaml": "name: ti\x00ny\n"}, ("space", "--space", "{tmp}/s.yaml"),
     "control character #x0000"),
    ("space_deep_list", {"s.yaml": DEEP_LIST}, ("space", "--space", "{tmp}/s.yaml"),
     "nested too deeply"),
    ("space_deep_mapping", {"s.yaml": DEEP_MAP}, ("space", "--space", "{tmp}/s.yaml"),
     "nested too deeply"),
    ("space_empty", {"s.yaml": ""}, ("space", "--space", "{tmp}/s.yaml"), "got nothing"),
    ("space_tab_indent", {"s.yaml": "name: x\ngeometry:\n\tframes: 4\n"},
     ("space", "--space", "{tmp}/s.yaml"), "invalid YAML at line 3"),
    ("space_is_a_string", {"s.yaml": "just words\n"}, ("space", "--space", "{tmp}/s.yaml"),
     "expected a mapping"),
    ("space_frames_inf", {"s.yaml": SPACE.replace("frames: 4", "frames: .inf")},
     ("space", "--space", "{tmp}/s.yaml"), "geometry.frames"),
    ("space_frames_1e400", {"s.yaml": SPACE.replace("frames: 4", "frames: 1e400")},
     ("space", "--space", "{tmp}/s.yaml"), "geometry.frames"),
    ("space_slots_string", {"s.yaml": SPACE.split("slots:")[0] + "slots: everywhere\n"},
     ("space", "--space", "{tmp}/s.yaml"), "slots"),
    ("space_deep_value",
     {"s.yaml": SPACE.replace("name: tiny", "name: tiny\ndescription: " + "[" * 200 + "]" * 200)},
     ("space", "--space", "{tmp}/s.yaml"), "description: [[[["),
    ("space_duplicate_key", {"s.yaml": SPACE.replace("  batch: 1\n", "  batch: 1\n  batch: 2\n")},
     ("space", "--space", "{tmp}/s.yaml"), "duplicate key 'batch'"),
    # --- arch files (nas train) ---
    ("arch_missing", {}, TRAIN, "file not found"),
    ("arch_space_is_a_string", {"arch.yaml": ARCH.replace("{name: tiny}", "tiny")},
     TRAIN_NO_SPACE, "space: expected a mapping (name, hash), got 'tiny'"),
    ("arch_space_unknown", {"arch.yaml": ARCH.replace("{name: tiny}", "{name: mine}")},
     TRAIN_NO_SPACE, "'mine' is not a bundled space"),
    ("arch_not_utf8", {"arch.yaml": ARCH.encode() + b"# \xc3\x28\n"}, TRAIN, "is not UTF-8 text"),
    ("arch_deep", {"arch.yaml": DEEP_LIST}, TRAIN, "nested too deeply"),
    ("arch_deep_no_space", {"arch.yaml": DEEP_MAP}, TRAIN_NO_SPACE, "nested too deeply"),
    ("arch_top_level_list", {"arch.yaml": "- none\n- none\n"}, TRAIN, "expected a mapping"),
    ("arch_empty", {"arch.yaml": ""}, TRAIN, "expected a mapping"),
    ("arch_names_no_space", {"arch.yaml": ARCH.replace("space: {name: tiny}\n", "")},
     TRAIN_NO_SPACE, "give --space: the file names no space"),
    ("arch_unknown_slot", {"arch.yaml": ARCH + "  up.9.9: none\n"}, TRAIN, "choices.up.9.9"),
    ("arch_missing_slot", {"arch.yaml": ARCH.replace("  mid.1.0: none\n", "")}, TRAIN,
     "choices.mid.1.0: is missing"),
    ("arch_op_not_allowed", {"arch.yaml": ARCH.replace("mid.1.0: none", "mid.1.0: conv1d")},
     TRAIN, "choices.mid.1.0"),
    ("arch_kernel_string",
     {"arch.yaml": ARCH.replace("down.0.0: none", "down.0.0: {op: conv1d, kernel: '3'}")},
     TRAIN, "choices.down.0.0.kernel"),
    ("arch_untied", {"arch.yaml": ARCH.replace("up.1.1: none", "up.1.1: {op: conv1d}")}, TRAIN,
     "choices.up.1.1"),
    # --- table.csv (read by nas profile import before it adds rows) ---
    ("table_truncated_row", bad_table(table(table_row()[:60])), IMPORT, "a truncated file?"),
    ("table_truncated_in_quotes", bad_table(table(table_row())[: len(HEADER) + 12]), IMPORT,
     "a truncated file?"),
    ("table_not_utf8",
     bad_table(table(table_row(reason="\udcff")).encode("utf-8", "surrogateescape")),
     IMPORT, "table.csv:2: is not UTF-8 text"),
    ("table_empty", bad_table(""), IMPORT, "table.csv: is empty"),
    ("table_missing_column", bad_table(GOOD_TABLE.replace(",flops", ",flop")), IMPORT,
     "missing columns ['flops']"),
    ("table_extra_cell", bad_table(table(table_row() + ",x")), IMPORT, "more cells than"),
    ("table_duplicate_key", bad_table(table(table_row(), table_row(latency_ms_p50="2.5"))),
     IMPORT, "table.csv:3: duplicate key"),
    ("table_p50_nan", bad_table(table(table_row(latency_ms_p50="nan"))), IMPORT,
     "table.csv:2: latency_ms_p50: 'nan' is not a finite number"),
    ("table_p50_inf", bad_table(table(table_row(latency_ms_p90="inf"))), IMPORT,
     "latency_ms_p90: 'inf' is not a finite number"),
    ("table_p50_zero", bad_table(table(table_row(latency_ms_p10="0", latency_ms_p50="0"))),
     IMPORT, "latency_ms_p10: 0 must be > 0 in a measured row"),
    ("table_p50_negative", bad_table(table(table_row(latency_ms_p50="-2"))), IMPORT,
     "latency_ms_p50: -2 must be > 0"),
    ("table_percentiles_out_of_order", bad_table(table(table_row(latency_ms_p10="2.5"))), IMPORT,
     "latency_ms_p10 2.5 > latency_ms_p50 2"),
    ("table_peak_mem_negative", bad_table(table(table_row(peak_mem_mb="-1"))), IMPORT,
     "peak_mem_mb: -1 must be >= 0"),
    ("table_weight_bytes_fraction", bad_table(table(table_row(weight_bytes="1.5"))), IMPORT,
     "weight_bytes: '1.5' is not a whole number"),
    ("table_flops_negative", bad_table(table(table_row(flops="-8"))), IMPORT,
     "flops: -8 must be >= 0"),
    ("table_repeats_word", bad_table(table(table_row(repeats="five"))), IMPORT,
     "repeats: 'five' is not a number"),
    ("table_channels_word", bad_table(table(table_row(channels="x"))), IMPORT,
     "channels: 'x' is not a whole number >= 1"),
    ("table_key_mismatch", bad_table(table(table_row(frames="8"))), IMPORT,
     "does not match its columns"),
    ("table_unknown_source", bad_table(table(table_row(source="guessed"))), IMPORT,
     "source: 'guessed' is not one of"),
    # --- meta.json ---
    ("meta_missing", bad_table(meta_json=None), IMPORT, "meta.json: missing"),
    ("meta_a_list", bad_table(meta_json="[1, 2]"), IMPORT, "meta.json: expected a JSON object"),
    ("meta_device_a_string", bad_table(meta_json='{"device": "cpu-ort"}'), IMPORT,
     "meta.json: device: expected an object"),
    ("meta_device_name_number", bad_table(meta_json=meta(name=7)), IMPORT,
     "device.name: 7 is not a string"),
    ("meta_no_device_name", bad_table(meta_json=meta(name=None)), IMPORT,
     "device.name is required"),
    ("meta_truncated", bad_table(meta_json=GOOD_META[:30]), IMPORT,
     "meta.json: invalid JSON at line 1"),
    ("meta_not_utf8", bad_table(meta_json=GOOD_META.encode().replace(b"cpu-ort", b"cpu\xa0ort")),
     IMPORT, "meta.json:1: is not UTF-8 text"),
    ("meta_deep", bad_table(meta_json="[" * 20_000 + "]" * 20_000), IMPORT, "nested too deeply"),
    ("meta_duplicate_key", bad_table(meta_json='{"device": {"name": "a", "name": "b"}}'), IMPORT,
     "duplicate key 'name'"),
    ("meta_budget_zero", bad_table(meta_json=meta(memory_budget_mb=0)), IMPORT,
     "device.memory_budget_mb: 0 must be > 0"),
    ("meta_budget_negative", bad_table(meta_json=meta(memory_budget_mb=-5.5)), IMPORT,
     "device.memory_budget_mb: -5.5 must be > 0"),
    ("meta_budget_nan", bad_table(meta_json=meta(memory_budget_mb=float("nan"))), IMPORT,
     "device.memory_budget_mb: nan is not a number"),
    ("meta_budget_string", bad_table(meta_json=meta(memory_budget_mb="4 GB")), IMPORT,
     "device.memory_budget_mb: '4 GB' is not a number"),
    ("meta_overhead_negative", bad_table(meta_json=json.dumps({**META, "overhead_ms": -1})),
     IMPORT, "overhead_ms: -1 must be a finite number >= 0"),
    ("meta_overhead_inf", bad_table(meta_json=json.dumps({**META, "overhead_mb": float("inf")})),
     IMPORT, "overhead_mb: inf must be a finite number >= 0"),
    # --- nas profile import files ---
    ("import_missing", {}, IMPORT_NEW, "lab.csv: cannot read"),
    ("import_empty", bad_lab(""), IMPORT_NEW, "no rows"),
    ("import_header_only", bad_lab("key,latency_ms_p50\n"), IMPORT_NEW, "no rows"),
    ("import_not_utf8", bad_lab(GOOD_LAB.encode() + b'"x",\x91\n'), IMPORT_NEW,
     "lab.csv:3: is not UTF-8 text"),
    ("import_p50_inf", bad_lab(lab(f'"{KEY}",inf')), IMPORT_NEW,
     "lab.csv:2: latency_ms_p50: 'inf' is not a finite number"),
    ("import_p50_1e400", bad_lab(lab(f'"{KEY}",1e400')), IMPORT_NEW,
     "latency_ms_p50: '1e400' is not a finite number"),
    ("import_p50_nan", bad_lab(lab(f'"{KEY}",NaN')), IMPORT_NEW,
     "latency_ms_p50: 'NaN' is not a finite number"),
    ("import_p50_negative", bad_lab(lab(f'"{KEY}",-1.5')), IMPORT_NEW,
     "latency_ms_p50: -1.5 must be > 0 in a measured row"),
    ("import_p50_zero", bad_lab(lab(f'"{KEY}",0')), IMPORT_NEW, "must be > 0"),
    ("import_p90_below_p50", bad_lab(lab_with("latency_ms_p90", "2", "1")),
     IMPORT_NEW, "latency_ms_p50 2 > latency_ms_p90 1"),
    ("import_peak_mem_negative", bad_lab(lab_with("peak_mem_mb", "2", "-3")),
     IMPORT_NEW, "peak_mem_mb: -3 must be >= 0"),
    ("import_weight_bytes_inf",
     bad_lab(lab_with("weight_bytes", "2", "inf")), IMPORT_NEW,
     "weight_bytes: 'inf' is not a whole number"),
    ("import_repeats_fraction", bad_lab(lab_with("repeats", "2", "2.5")),
     IMPORT_NEW, "repeats: '2.5' is not a whole number"),
    ("import_repeats_negative", bad_lab(lab_with("repeats", "2", "-1")),
     IMPORT_NEW, "repeats: -1 must be >= 0"),
    ("import_duplicate_rows", bad_lab(lab(f'"{KEY}",1.5', f'"{KEY}",1.7')), IMPORT_NEW,
     "lab.csv:3: duplicate row"),
    ("import_no_p50_column", bad_lab(lab(f'"{KEY}",1.5', header="key,latency_ms")), IMPORT_NEW,
     "latency_ms_p50 is required"),
    ("import_bad_key", bad_lab(lab('"conv_in@16x4",1.5')), IMPORT_NEW, "is not a row key"),
    ("import_wrong_precision", bad_lab(lab(f'"{KEY.replace("fp32", "fp16")}",1.5')), IMPORT_NEW,
     "precision fp16 but device cpu-ort runs fp32"),
    ("import_unknown_source", bad_lab(lab(f'"{KEY}",1.5,lab', header="key,latency_ms_p50,source")),
     IMPORT_NEW, "source 'lab' is not one of"),
    ("import_no_key_no_columns", bad_lab(lab("conv_in,1.5", header="op,latency_ms_p50")),
     IMPORT_NEW, "missing column 'channels'"),
    ("import_channels_zero",
     bad_lab(lab("conv_in,cin=4,0,4,8,8,1,fp32,1.5",
                 header="op,options,channels,frames,height,width,batch,precision,latency_ms_p50")),
     IMPORT_NEW, "channels: '0' is not a whole number >= 1"),
    ("import_extra_cells", bad_lab(lab(f'"{KEY}",1.5,9')), IMPORT_NEW, "more cells than"),
    ("import_truncated_quote", bad_lab(f'key,latency_ms_p50\n"{KEY},1.5\n'), IMPORT_NEW,
     "is not a row key"),
    ("import_out_is_a_file", {**bad_lab(GOOD_LAB), "tbl": GOOD_TABLE}, IMPORT,
     "tbl is a file: --out is the table's folder"),
    ("import_no_device", bad_lab(GOOD_LAB), ("profile", "import", "{tmp}/lab.csv"),
     "--device is required"),
    ("import_unknown_device", bad_lab(GOOD_LAB),
     ("profile", "import", "--device", "pixel99", "{tmp}/lab.csv"), "pixel99"),
    # --- geometry overrides and other arguments ---
    ("geometry_not_a_number", {"arch.yaml": ARCH}, (*TRAIN, "--geometry", "frames=abc"),
     "geometry.frames: 'abc' is not an integer"),
    ("geometry_no_equals", {"arch.yaml": ARCH}, (*TRAIN, "--geometry", "frames"),
     "expected key=value"),
    ("geometry_unknown_key", {"arch.yaml": ARCH}, (*TRAIN, "--geometry", "fps=8"),
     "geometry override 'fps'"),
    ("geometry_zero", {"arch.yaml": ARCH}, (*TRAIN, "--geometry", "frames=0"), "geometry.frames"),
    ("geometry_validate_proxy", {},
     ("validate", "proxy", "--space", TINY, "--out", "{tmp}/v", "--proxy-geometry", "cfg=maybe"),
     "geometry.cfg"),
    ("steps_not_a_number", {"arch.yaml": ARCH}, (*TRAIN, "--steps", "abc"),
     "argument --steps: invalid int value: 'abc'"),
    ("steps_zero", {"arch.yaml": ARCH}, (*TRAIN, "--steps", "0"), "steps must be an integer >= 1"),
    ("lr_inf", {"arch.yaml": ARCH}, (*TRAIN, "--lr", "inf"), "lr must be a finite number > 0"),
    ("lr_nan", {"arch.yaml": ARCH}, (*TRAIN, "--lr", "nan"), "lr must be a finite number > 0"),
    ("width_mult_inf", {"arch.yaml": ARCH}, (*TRAIN, "--width-mult", "1e400"),
     "width_mult must be a finite number > 0"),
    ("unknown_flag", {"arch.yaml": ARCH}, (*TRAIN, "--stpes", "3"),
     "unrecognized arguments: --stpes 3"),
    ("bad_choice", {"arch.yaml": ARCH}, (*TRAIN, "--objective", "flow"),
     "argument --objective: invalid choice: 'flow'"),
    ("required_flag", {}, ("space",), "the following arguments are required: --space"),
    ("resume_without_out", {"arch.yaml": ARCH},
     ("train", "--arch", "{tmp}/arch.yaml", "--space", TINY, "--resume"), "--resume needs --out"),
    ("resume_nothing_there", {"arch.yaml": ARCH}, (*TRAIN, "--resume"), "no checkpoint"),
    # --- checkpoints (nas train --resume, nas export --checkpoint) ---
    ("ckpt_model_truncated", {"run": GOOD_RUN, f"{STEP}/model.safetensors": Truncate(100)},
     RESUME, "model.safetensors is 100 bytes"),
    ("ckpt_ema_flipped_byte", {"run": GOOD_RUN, f"{STEP}/ema.safetensors": Flip(10)}, RESUME,
     "ema.safetensors does not match the SHA-256"),
    ("ckpt_optimizer_missing", {"run": GOOD_RUN, f"{STEP}/optimizer.safetensors": Delete()},
     RESUME, "optimizer.safetensors is missing"),
    ("ckpt_model_renamed",
     {"run": GOOD_RUN, f"{STEP}/model.safetensors": Move(f"{STEP}/model.bak")}, RESUME,
     "model.safetensors is missing"),
    ("ckpt_state_truncated", {"run": GOOD_RUN, f"{STEP}/state.json": Truncate(40)}, RESUME,
     "state.json is not valid JSON"),
    ("ckpt_state_missing", {"run": GOOD_RUN, f"{STEP}/state.json": Delete()}, RESUME,
     "state.json is missing"),
    ("ckpt_state_a_list", {"run": GOOD_RUN, f"{STEP}/state.json": "[]"}, RESUME,
     "state.json is not a JSON object"),
    ("ckpt_state_other_format", {"run": GOOD_RUN, f"{STEP}/state.json": '{"format": "x/2"}'},
     RESUME, "not of a nas train checkpoint (format 'x/2')"),
    ("ckpt_state_step_a_string",
     {"run": GOOD_RUN, f"{STEP}/state.json": '{"format": "nas-train-checkpoint/1", "step": "2"}'},
     RESUME, "state.json: step is missing or not an integer"),
    ("ckpt_state_not_utf8", {"run": GOOD_RUN, f"{STEP}/state.json": b'{"format": "\xff"}'},
     RESUME, "state.json is not UTF-8 text"),
    ("ckpt_folder_renamed", {"run": GOOD_RUN, STEP: Move("run/checkpoints/step_0000001")},
     RESUME, "state.json is of step 2"),
    ("ckpt_odd_folder_name", {"run": GOOD_RUN, STEP: Move("run/checkpoints/step_last")},
     RESUME, "has no checkpoint to continue"),
    ("ckpt_fresh_run_over_corrupt",
     {"run": GOOD_RUN, f"{STEP}/model.safetensors": Truncate(0)},
     tuple(a for a in RESUME if a != "--resume"), "unusable checkpoint"),
    ("export_checkpoint_garbage", {"arch.yaml": ARCH, "w.safetensors": b"\x00" * 64},
     ("export", "--arch", "{tmp}/arch.yaml", "--space", TINY, "--format", "onnx",
      "--checkpoint", "{tmp}/w.safetensors", "--out", "{tmp}/a.onnx"),
     "not a readable safetensors file"),
]
# fmt: on

# run a second time as `python -m nas`: the real interpreter's stack and the torch import
SUBPROCESS = ("space_deep_list", "ckpt_model_truncated")


def test_the_corpus_is_big_and_its_ids_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) >= 45 and len(set(ids)) == len(ids)
    assert set(SUBPROCESS) <= set(ids)


@pytest.fixture(scope="session")
def good_run(tmp_path_factory: pytest.TempPathFactory, tiny_space: Any) -> Path:
    """A real run folder: 2 steps of a one-conv1d arch, one checkpoint (step 2)."""
    import yaml

    from nas.quality import TrainConfig, train
    from nas.space import arch_from_dict

    out = tmp_path_factory.mktemp("good_run")
    arch = arch_from_dict(tiny_space, yaml.safe_load(RUN_ARCH))
    config = TrainConfig(steps=2, batch_size=1, checkpoint_every=2)
    train(tiny_space, arch, config, out, progress=False)
    return out


def _write(root: Path, files: Mapping[str, Content], good_run: Path) -> None:
    for rel, content in files.items():
        path = root / rel
        if content is GOOD_RUN:
            shutil.copytree(good_run, path)
        elif isinstance(content, Truncate):
            path.write_bytes(path.read_bytes()[: content.keep])
        elif isinstance(content, Delete):
            path.unlink()
        elif isinstance(content, Move):
            path.rename(root / content.to)
        elif isinstance(content, Flip):
            data = bytearray(path.read_bytes())
            data[-content.offset] ^= 0xFF
            path.write_bytes(bytes(data))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: a hash of each file's bytes, "dir" for folders."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _argv(argv: tuple[str, ...], root: Path) -> list[str]:
    return [a.replace("{tmp}", str(root)) for a in argv]


def _check(rc: int, err: str, needle: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert len(err) < 1000, err  # it names the bad value, it does not reprint the file
    assert needle in err, err


def _case(case_id: str) -> tuple[Mapping[str, Content], tuple[str, ...], str]:
    return next((f, a, n) for i, f, a, n in CASES if i == case_id)


@pytest.mark.parametrize(("case_id", "files", "argv", "needle"), CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_one_line(
    case_id: str,
    files: Mapping[str, Content],
    argv: tuple[str, ...],
    needle: str,
    tmp_path: Path,
    good_run: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # default outputs (experiments/, latency_tables/) would land here
    monkeypatch.delenv("NAS_TABLES", raising=False)
    _write(tmp_path, files, good_run)
    before = _snapshot(tmp_path)
    rc = main(_argv(argv, tmp_path))
    err = capsys.readouterr().err
    _check(rc, err, needle)
    assert _snapshot(tmp_path) == before, "the failed command changed files"


@pytest.mark.slow
@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_malformed_input_in_a_subprocess(case_id: str, tmp_path: Path, good_run: Path) -> None:
    files, argv, needle = _case(case_id)
    _write(tmp_path, files, good_run)
    before = _snapshot(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "nas", *_argv(argv, tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    _check(proc.returncode, proc.stderr, needle)
    assert _snapshot(tmp_path) == before

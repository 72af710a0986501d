"""Malformed space files: each must fail with one SpaceError naming the YAML path of the mistake.

The files live in ``tests/spaces/bad/``; every one of them must appear in ``CASES`` below, so a
new bad file cannot be added without saying what error it must produce.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nas.errors import SpaceError
from nas.space import load_space, parse_space_text

BAD = Path(__file__).resolve().parent.parent / "spaces" / "bad"
REPO = Path(__file__).resolve().parents[2]

# (file name, expected SpaceError.where, a substring of the message)
# fmt: off
CASES: list[tuple[str, str, str]] = [
    # YAML itself
    ("yaml_syntax_error.yaml", "", "invalid YAML at line 21, column 6"),
    ("duplicate_key.yaml", "", "duplicate key 'frames' at line 7"),
    ("top_level_list.yaml", "(top level)", "expected a mapping, got a list"),
    ("unknown_top_level_key.yaml", "ops_sets", "unknown key; allowed keys: name, description"),
    # geometry
    ("unknown_geometry_key.yaml", "geometry.fps", "unknown key; allowed keys: frames,"),
    ("missing_frames.yaml", "geometry.frames", "is required"),
    ("geometry_null.yaml", "geometry", "expected a mapping, got nothing (null)"),
    ("frames_string.yaml", "geometry.frames", "'4' is not an integer"),
    ("batch_list.yaml", "geometry.batch", "[1, 2] is not an integer"),
    ("latent_height_not_divisible.yaml", "geometry.latent_height", "9 is not divisible by 2"),
    ("latent_channels_mismatch.yaml", "geometry.latent_channels",
     "16 does not match the backbone's in_channels 4"),
    ("text_dim_mismatch.yaml", "geometry.text_dim",
     "768 does not match the backbone's cross_attention_dim 16"),
    ("unknown_precision.yaml", "geometry.precision", "'bf16' is not one of ['fp32', 'fp16']"),
    # backbone
    ("unknown_backbone_ref.yaml", "backbone.ref",
     "'sd21' is not one of ['pruned', 'sd15', 'tiny']"),
    ("backbone_ref_and_path.yaml", "backbone", "give exactly one of ref"),
    ("backbone_path_missing.yaml", "backbone.path", "no_such_unet' does not exist"),
    ("backbone_path_url.yaml", "backbone.path", "looks like a URL; nas never downloads models"),
    ("backbone_path_unknown_home.yaml", "backbone.path", "is not a usable path"),
    ("freeze_spatial_int.yaml", "backbone.freeze_spatial", "1 is not true or false"),
    ("config_class_embed_type.yaml", "backbone.config.class_embed_type",
     "'timestep' is not supported"),
    ("config_non_string_key.yaml", "backbone.config.320", "not a string"),
    # ops and op sets
    ("unknown_op.yaml", "slots.up[1].ops[1].op", "'conv2d' is not one of ['none', 'conv1d'"),
    ("op_name_list.yaml", "op_sets.small[1].op", "['conv1d', 'conv3d'] is not one of"),
    ("conv1d_kernel_4.yaml", "slots.up[0].ops[1].kernel", "4 is not one of [3, 5, 7]"),
    ("unknown_op_option.yaml", "slots.mid[0].ops[1].num_heads",
     "unknown key; allowed keys: op, heads, ffn_ratio, pos"),
    ("heads_empty_list.yaml", "op_sets.small[2].heads", "empty list; allowed: [1, 2, 4, 8, 16]"),
    ("heads_not_dividing.yaml", "op_sets.small[2].heads[1]",
     "16 heads do not divide slot down.0.0's 24 channels"),
    ("heads_default_not_dividing.yaml", "op_sets.small[2].heads",
     "8 heads do not divide slot down.0.0's 12 channels (the default; set heads)"),
    ("unknown_op_set.yaml", "slots.down[0].ops",
     "'smal' is not a list of ops nor one of the op_sets ['small']"),
    ("op_set_not_a_list.yaml", "op_sets.small", "expected a non-empty list of ops, got a string"),
    ("op_sets_list.yaml", "op_sets", "expected a mapping of name -> list of ops, got a list"),
    ("empty_ops.yaml", "slots.mid[0].ops", "expected a non-empty list of ops, got an empty list"),
    # slots
    ("slot_level_out_of_range.yaml", "slots.up[0].level", "2 is not one of [0, 1] (up levels)"),
    ("slot_level_true.yaml", "slots.down[0].level", "true is not an integer"),
    ("slot_index_out_of_range.yaml", "slots.up[1].index[1]", "2 is not one of [0, 1]"),
    ("slot_covered_twice.yaml", "slots.down[1]",
     "slot down.1.0 is already covered by slots.down[0]"),
    ("empty_slots.yaml", "slots", "no slot has any op choice"),
    ("double_braces.yaml", "", "a mapping cannot be a key, at line"),
]
# fmt: on

KNOWN_BUGS: dict[str, str] = {}  # file -> reason; a strict xfail until fixed


def _params() -> list[object]:
    out: list[object] = []
    for name, where, needle in CASES:
        marks = []
        if name in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(raises=TypeError, strict=True, reason=KNOWN_BUGS[name]))
        out.append(pytest.param(name, where, needle, marks=marks, id=name.removesuffix(".yaml")))
    return out


@pytest.mark.parametrize(("name", "where", "needle"), _params())
def test_bad_space_file(name: str, where: str, needle: str) -> None:
    path = BAD / name
    with pytest.raises(SpaceError) as info:
        load_space(path)
    err = info.value
    text = str(err)
    assert err.where == where, text
    assert needle in err.message, text
    assert "\n" not in text and "\r" not in text, text
    assert text.startswith(f"{path}: "), text
    assert err.source == str(path)


def test_every_bad_file_is_in_the_table() -> None:
    names = [name for name, _, _ in CASES]
    assert len(names) == len(set(names)), "a file is listed twice in CASES"
    on_disk = {p.name for p in BAD.iterdir()}
    missing, extra = sorted(on_disk - set(names)), sorted(set(names) - on_disk)
    assert not missing and not extra, f"not in CASES: {missing}; no such file: {extra}"
    assert len(names) >= 20


def test_each_bad_file_says_what_is_wrong() -> None:
    for path in BAD.iterdir():
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# Malformed: "), path.name


@pytest.mark.parametrize(
    "name", ["conv1d_kernel_4.yaml", "duplicate_key.yaml", "backbone_path_url.yaml"]
)
def test_cli_reports_one_line(name: str) -> None:
    path = BAD / name
    proc = subprocess.run(
        [sys.executable, "-m", "nas", "space", "--space", str(path)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert lines[0].startswith(f"error: {path}: "), lines[0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[" * 20_000 + "]" * 20_000, "invalid YAML: nested too deeply"),
        ("a: {" * 20_000 + "}" * 20_000, "invalid YAML: nested too deeply"),
        (
            "name: x\ndescription: a\x07b\n",
            "invalid YAML at line 2: control character #x0007 is not allowed",
        ),
    ],
    ids=["deep_list", "deep_mapping", "control_character"],
)
def test_unparsable_yaml_text_is_one_line(text: str, needle: str) -> None:
    with pytest.raises(SpaceError) as info:
        parse_space_text(text, "s.yaml")
    assert str(info.value) == f"s.yaml: {needle}"

"""Malformed arch files: each fails with a SpaceError naming the YAML path of the mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nas.errors import SpaceError
from nas.space import SearchSpace, arch_from_dict, load_arch, load_space, parse_space_text

REPO = Path(__file__).resolve().parents[2]
TINY_FILE = REPO / "search_spaces" / "tiny.yaml"

# tiny's slots: down.0.0 down.1.0 mid.1.0 up.1.0 up.1.1 (tied) up.0.0 up.0.1
ALL_NONE = {
    s: "none" for s in ("down.0.0", "down.1.0", "mid.1.0", "up.1.0", "up.1.1", "up.0.0", "up.0.1")
}
CONV1D = {"op": "conv1d", "kernel": 3}


@pytest.fixture(scope="module")
def tiny() -> SearchSpace:
    return load_space(TINY_FILE)


@pytest.fixture(scope="module")
def partial() -> SearchSpace:
    """tiny without its up level-0 entry: up.0.0 and up.0.1 are fixed to none."""
    text = TINY_FILE.read_text(encoding="utf-8")
    line = "    - {level: 0, ops: [none, {op: conv3d, kernel_s: 1}]}\n"
    assert line in text
    return parse_space_text(text.replace(line, ""), "partial.yaml")


def _arch(**choices: Any) -> dict[str, Any]:
    """An all-none arch of tiny with some choices replaced (``None`` drops the slot)."""
    merged = {**ALL_NONE, **{k.replace("_", "."): v for k, v in choices.items()}}
    return {"choices": {k: v for k, v in merged.items() if v is not None}}


# (id, arch dict, expected where, a substring of the message)
# fmt: off
CASES: list[tuple[str, Any, str, str]] = [
    ("unknown_slot", {"choices": {**ALL_NONE, "down.2.0": "none"}}, "choices.down.2.0",
     "unknown slot; slots: down.0.0, down.1.0"),
    ("missing_searched_slot", _arch(mid_1_0=None), "choices.mid.1.0",
     "is missing (the space searches this slot)"),
    ("choice_not_allowed_here", _arch(mid_1_0=CONV1D), "choices.mid.1.0",
     "conv1d(depthwise=false,kernel=3) is not allowed here; allowed: none, attn3d("),
    ("tied_slots_differ", _arch(up_1_1=CONV1D), "choices.up.1.1",
     "differs from up.1.0; they are tied"),
    ("unknown_top_level_key", {**_arch(), "arch": "x"}, "arch",
     "unknown key; allowed keys: arch_id, space, choices"),
    ("mixed_type_top_level_keys", {**_arch(), 1: 2, "extra": 3}, "1", "unknown key"),
    ("missing_choices", {"arch_id": "abc"}, "choices", "is required"),
    ("top_level_list", [ALL_NONE], "(top level)", "expected a mapping with 'choices', got a list"),
    ("choices_list", {"choices": ["none"]}, "choices", "expected a mapping slot -> op"),
    ("unknown_op", _arch(down_0_0="lstm"), "choices.down.0.0", "'lstm' is not one of"),
    ("op_is_a_list", _arch(down_0_0={"op": ["conv1d"]}), "choices.down.0.0.op",
     "['conv1d'] is not one of"),
    ("no_op_key", _arch(down_0_0={"kernel": 3}), "choices.down.0.0",
     "expected an op name or a mapping with 'op'"),
    ("option_value_not_allowed", _arch(down_0_0={"op": "conv1d", "kernel": 4}),
     "choices.down.0.0.kernel", "4 is not one of [3, 5, 7]"),
    ("option_value_wrong_type", _arch(down_0_0={"op": "attn1d", "heads": "2", "ffn_ratio": 2}),
     "choices.down.0.0.heads", "'2' is not one of [1, 2, 4, 8, 16]"),
    ("unknown_option", _arch(down_0_0={"op": "conv1d", "size": 3}), "choices.down.0.0.size",
     "conv1d has no option 'size'; it has ['kernel', 'depthwise']"),
    ("non_string_option_key", _arch(down_0_0={"op": "conv1d", 3: 5}), "choices.down.0.0.3",
     "conv1d has no option 3"),
    ("option_on_none", _arch(down_0_0={"op": "none", "kernel": 3}), "choices.down.0.0.kernel",
     "none has no option 'kernel'"),
]
# fmt: on


@pytest.mark.parametrize(
    ("raw", "where", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_arch(tiny: SearchSpace, raw: Any, where: str, needle: str) -> None:
    with pytest.raises(SpaceError) as info:
        arch_from_dict(tiny, raw)
    assert info.value.where == where, str(info.value)
    assert needle in info.value.message, str(info.value)
    assert "\n" not in str(info.value)


def test_non_none_choice_in_a_slot_fixed_to_none(partial: SearchSpace) -> None:
    assert partial.group_of("up.0.0") is None
    raw = _arch(up_0_0={"op": "conv3d", "kernel_s": 1})
    with pytest.raises(SpaceError) as info:
        arch_from_dict(partial, raw)
    assert info.value.where == "choices.up.0.0"
    assert "conv3d(kernel_s=1,kernel_t=3): this slot is fixed to none in the space" in str(
        info.value
    )
    # none, or leaving the fixed slot out, is fine
    assert arch_from_dict(partial, _arch()).choice("up.0.0").op == "none"
    assert arch_from_dict(partial, _arch(up_0_0=None, up_0_1=None)).describe() == "all none"


def test_valid_arches_still_load(tiny: SearchSpace) -> None:
    arch = arch_from_dict(tiny, _arch(down_0_0=CONV1D, up_1_0="conv1d", up_1_1=CONV1D))
    assert arch.choice("up.1.1").key == "conv1d(depthwise=false,kernel=3)"
    assert arch_from_dict(tiny, arch.to_dict()) == arch


def test_arch_file_error_names_the_file(tiny: SearchSpace, tmp_path: Path) -> None:
    path = tmp_path / "arch.yaml"
    path.write_text(
        "choices:\n"
        + "".join(f"  {s}: none\n" for s in ALL_NONE if s != "up.1.1")
        + "  up.1.1: {op: conv1d, kernel: 4}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpaceError) as info:
        load_arch(tiny, path)
    text = str(info.value)
    assert info.value.where == "choices.up.1.1.kernel"
    assert text == f"{path}: choices.up.1.1.kernel: 4 is not one of [3, 5, 7]"


def test_an_arch_of_another_space_says_which(tiny_space, temporal_space, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from nas.errors import SpaceError
    from nas.space import load_arch, other_space_note, sample_arch

    arch = sample_arch(tiny_space, np.random.default_rng(0))
    path = tmp_path / "a.yaml"
    arch.save(path)
    with pytest.raises(SpaceError) as e:
        load_arch(temporal_space, path)
    msg = str(e.value)
    assert f"written for space 'tiny', hash {tiny_space.hash}" in msg and "\n" not in msg
    assert other_space_note(tiny_space, path) == ""  # its own space: no note
    # another version of the same space whose slots still fit: loads, with a note
    text = path.read_text().replace(tiny_space.hash, "0123456789ab")
    path.write_text(text)
    assert load_arch(tiny_space, path).choices == arch.choices
    note = other_space_note(tiny_space, path)
    assert note == (
        f"{path} was written for space 'tiny' (hash 0123456789ab), not 'tiny' "
        f"(hash {tiny_space.hash})"
    )

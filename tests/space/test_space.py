"""Loading valid spaces, Arch ids, round trips, sampling, mutation and enumeration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nas.space import (
    Arch,
    OpChoice,
    arch_from_dict,
    arch_from_indices,
    arch_indices,
    enumerate_arches,
    load_arch,
    load_space,
    mutate_arch,
    parse_space_text,
    reference_arch,
    sample_arch,
)

PINNED_SPACE = textwrap.dedent(
    """
    name: pinned
    backbone: {ref: tiny}
    geometry: {frames: 4, latent_height: 8, latent_width: 8, text_length: 6, precision: fp32}
    slots:
      down:
        - {level: all, ops: [none, {op: conv1d, kernel: [3, 5]}]}
      mid:
        - {ops: [none, {op: attn1d, heads: 2}]}
      up:
        - {level: all, ops: [none, conv3d], tie: true}
    """
)


def test_default_space_loads(temporal_space) -> None:  # type: ignore[no-untyped-def]
    s = temporal_space
    assert s.name == "temporal"
    assert s.backbone.source == "ref:pruned"
    assert [x.name for x in s.slots] == [
        "down.0.0",
        "down.1.0",
        "down.1.1",
        "down.2.0",
        "mid.2.0",
        "up.2.0",
        "up.2.1",
        "up.1.0",
        "up.1.1",
        "up.1.2",
        "up.0.0",
        "up.0.1",
    ]
    # 3 level-0 slots with 9 choices, 9 slots with 12, times 4 decode choices: an exact int
    assert [c.key for c in s.decode] == [
        "tiny/chunk1", "tiny/chunk4", "sd_vae/chunk1", "sd_vae/chunk4"
    ]  # fmt: skip
    assert s.size == 9**3 * 12**9 * 4 == 15_045_919_506_432
    assert s.slot("up.1.2").channels == 640 and s.slot("up.1.2").height == 18


def test_space_size_is_exact_when_astronomical() -> None:
    text = PINNED_SPACE.replace(
        "{level: all, ops: [none, {op: conv1d, kernel: [3, 5]}]}",
        "{level: all, ops: [none, {op: conv1d, kernel: [3, 5, 7], depthwise: [true, false]},"
        " {op: attn1d, heads: [1, 2], ffn_ratio: [0, 1, 2, 4], pos: [none, sinusoidal, learned]}]}",
    )
    assert parse_space_text(text).size == (1 + 6 + 24) ** 2 * 2 * 2
    # SD-1.5 has 21 slots; with every option of every op each takes 1+6+4+4*(5*4*3) choices
    big = textwrap.dedent(
        """
        name: big
        backbone: {ref: sd15}
        geometry: {frames: 16, latent_height: 64, latent_width: 64}
        op_sets:
          all: [none, {op: conv1d, kernel: [3, 5, 7], depthwise: [true, false]},
                {op: conv3d, kernel_t: [3, 5], kernel_s: [1, 3]},
                {op: attn1d, heads: &h [1, 2, 4, 8, 16], ffn_ratio: &r [0, 1, 2, 4], pos: &p
                  [none, sinusoidal, learned]},
                {op: attn3d, heads: *h, ffn_ratio: *r, pos: *p},
                {op: xattn1d, heads: *h, ffn_ratio: *r, pos: *p},
                {op: xattn3d, heads: *h, ffn_ratio: *r, pos: *p}]
        slots: {down: [{ops: all}], mid: [{ops: all}], up: [{ops: all}]}
        """
    )
    s = parse_space_text(big)
    assert len(s.slots) == 21
    assert s.size == 251**21 and s.size > 10**50


def test_hash_ignores_comments_and_formatting() -> None:
    a = parse_space_text(PINNED_SPACE)
    b = parse_space_text("# a comment\n" + PINNED_SPACE.replace("name: pinned", "name: other"))
    assert a.hash == b.hash
    c = parse_space_text(PINNED_SPACE.replace("frames: 4", "frames: 2"))
    assert c.hash != a.hash


def test_arch_id_is_pinned() -> None:
    """The id algorithm must never change silently: ids are stored in studies and files."""
    s = parse_space_text(PINNED_SPACE)
    assert s.hash == "cbe4a13623f6dc0a"
    assert arch_from_indices(s, [1, 0, 1, 1]).arch_id == "6902242dac35"


def test_arch_id_stable_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    space_file = tmp_path / "s.yaml"
    space_file.write_text(PINNED_SPACE)
    code = (
        "import sys; from nas.space import load_space, arch_from_indices;"
        f"s = load_space({str(space_file)!r}); print(arch_from_indices(s, [2, 1, 0, 1]).arch_id)"
    )
    ids = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        ids.add(out.stdout.strip())
    assert ids == {arch_from_indices(load_space(space_file), [2, 1, 0, 1]).arch_id}


def test_roundtrip_yaml_and_json(tiny_space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = sample_arch(tiny_space, rng)
        for suffix in (".yaml", ".json"):
            p = a.save(tmp_path / f"{a.arch_id}{suffix}")
            b = load_arch(tiny_space, p)
            assert b == a and b.arch_id == a.arch_id
        assert arch_indices(
            tiny_space, arch_from_indices(tiny_space, arch_indices(tiny_space, a))
        ) == arch_indices(tiny_space, a)
    d = json.loads(a.to_json())
    assert set(d) == {"arch_id", "space", "choices"}
    assert d["space"]["hash"] == tiny_space.hash


def test_arch_file_keeps_resolved_choices(tiny_space) -> None:  # type: ignore[no-untyped-def]
    a = arch_from_indices(tiny_space, [1, 2, 1, 2, 1, 1])
    d = a.to_dict()
    assert d["choices"]["down.1.0"] == {
        "op": "attn1d",
        "ffn_ratio": 2,
        "heads": 2,
        "pos": "sinusoidal",
    }
    assert d["choices"]["down.0.0"] == {"op": "conv1d", "depthwise": False, "kernel": 3}
    # options left out of a hand-written file take their defaults
    d["choices"]["down.0.0"] = "conv1d"
    assert arch_from_dict(tiny_space, d) == a


def test_tied_slots_share_one_choice(tiny_space) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    for _ in range(30):
        a = sample_arch(tiny_space, rng)
        assert a.choice("up.1.0") == a.choice("up.1.1")


def test_sampling_is_seeded(temporal_space) -> None:  # type: ignore[no-untyped-def]
    x = [sample_arch(temporal_space, np.random.default_rng(7)).arch_id for _ in range(2)]
    assert x[0] == x[1]
    rng = np.random.default_rng(7)
    ids = {sample_arch(temporal_space, rng).arch_id for _ in range(50)}
    assert len(ids) == 50


def test_mutation_changes_something_and_stays_valid(temporal_space) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    a = sample_arch(temporal_space, rng)
    for prob in (0.0, 0.1, 1.0):
        for _ in range(20):
            b = mutate_arch(temporal_space, a, rng, prob)
            assert b != a
            assert arch_from_dict(temporal_space, b.to_dict()) == b
    b = mutate_arch(temporal_space, a, np.random.default_rng(5), 0.0)
    diff = [s for (s, x), (_, y) in zip(a.choices, b.choices, strict=True) if x != y]
    assert len(diff) == 1


def test_enumeration_covers_a_small_space_once(tiny_space) -> None:  # type: ignore[no-untyped-def]
    archs = list(enumerate_arches(tiny_space))
    assert len(archs) == tiny_space.size == 3 * 3 * 2 * 3 * 2 * 2
    assert len({a.arch_id for a in archs}) == len(archs)
    with pytest.raises(ValueError, match="more than limit"):
        next(enumerate_arches(tiny_space, limit=10))


def test_reference_arches(temporal_space) -> None:  # type: ignore[no-untyped-def]
    a, hits = reference_arch(temporal_space, "attn1d")
    assert hits == 12 and all(c.op == "attn1d" for _, c in a.choices)
    n, hits = reference_arch(temporal_space, "attn3d")
    assert hits == 9 and n.choice("down.0.0") == OpChoice("none")


def test_space_loads_from_outside_the_repo(tmp_path: Path, root: Path) -> None:
    p = tmp_path / "elsewhere" / "my_space.yaml"
    p.parent.mkdir()
    p.write_text((root / "search_spaces" / "temporal.yaml").read_text())
    s = load_space(p)
    assert s.hash == load_space(root / "search_spaces" / "temporal.yaml").hash


def test_bundled_space_by_name_from_any_directory(tmp_path: Path) -> None:
    assert load_space("temporal").name == "temporal"
    # a relative path that is not there (as search_spaces/ is not, outside a checkout)
    elsewhere = os.path.relpath(tmp_path / "search_spaces" / "temporal.yaml")
    assert load_space(elsewhere).name == "temporal"


def test_backbone_from_local_folder(tmp_path: Path, root: Path) -> None:
    folder = tmp_path / "my_unet"
    folder.mkdir()
    (folder / "config.json").write_text((root / "nas/_data/backbones/tiny.json").read_text())
    text = PINNED_SPACE.replace("backbone: {ref: tiny}", "backbone: {path: my_unet}")
    s = parse_space_text(text, base=tmp_path)
    assert s.backbone.source == f"path:{folder.resolve()}"
    assert s.hash == parse_space_text(PINNED_SPACE).hash  # same config, same space
    assert s.backbone.weights is None


def test_arch_is_hashable_and_frozen(tiny_space) -> None:  # type: ignore[no-untyped-def]
    a = sample_arch(tiny_space, np.random.default_rng(0))
    assert {a: 1}[a] == 1
    with pytest.raises(AttributeError):
        a.space_hash = "x"  # type: ignore[misc]
    assert isinstance(a, Arch)


def test_same_network_same_hash_however_the_config_is_written(tmp_path: Path) -> None:
    """diffusers' save_pretrained writes every default key; the space hash must not care."""
    from diffusers import UNet2DConditionModel

    from nas import backbone_config

    cfg = {k: v for k, v in backbone_config("tiny").items() if not k.startswith("_")}
    UNet2DConditionModel.from_config(cfg).save_pretrained(tmp_path / "unet")
    full = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert len(full) > len(cfg) + 10  # really the verbose form
    text = PINNED_SPACE.replace("backbone: {ref: tiny}", "backbone: {path: unet}")
    assert parse_space_text(text, base=tmp_path).hash == parse_space_text(PINNED_SPACE).hash


def test_bare_op_names_take_default_options() -> None:
    s = parse_space_text(PINNED_SPACE)
    (tied,) = [g for g in s.groups if g.name.startswith("tied:")]
    assert (
        tied.choices[1]
        == OpChoice.make("conv3d")
        == OpChoice("conv3d", (("kernel_s", 3), ("kernel_t", 3)))
    )


def test_absolute_missing_path_is_not_replaced_by_a_bundled_space(tmp_path: Path) -> None:
    from nas.errors import SpaceError

    with pytest.raises(SpaceError, match="file not found"):
        load_space(tmp_path / "tiny.yaml")


def test_bundled_fallback_reports_the_file_it_read(tmp_path: Path) -> None:
    s = load_space(os.path.relpath(tmp_path / "search_spaces" / "tiny.yaml"))
    assert s.source is not None and s.source.endswith("nas/_data/search_spaces/tiny.yaml")

"""The pipeline around the UNet in the cost model: rows, per-video latency by stage, memory."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _tiny_table import tiny_table

from nas.cost import CostModel, rows_for_space
from nas.errors import SpaceError
from nas.space import arch_from_indices, dim_sizes, enumerate_arches, load_space, parse_space_text

ROOT = Path(__file__).resolve().parents[2]
TINY_PIPE = ROOT / "search_spaces" / "tiny-pipeline.yaml"


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space(TINY_PIPE)


def test_pipeline_rows_and_decode_dimension(space) -> None:  # type: ignore[no-untyped-def]
    rows = rows_for_space(space, "fp32")
    text = [r for r in rows if r.op == "text_encoder"]
    dec = [r for r in rows if r.op == "decoder"]
    assert len(text) == 1 and text[0].height == 6 and text[0].channels == 16
    assert text[0].params["model"] == "tiny_clip" and text[0].is_pipeline
    # two decoders x chunks 1 and 4: four rows, a chunk's frames in the row's frames
    assert sorted((r.params["model"], r.frames) for r in dec) == [
        ("tiny_taesd", 1), ("tiny_taesd", 4), ("tiny_vae", 1), ("tiny_vae", 4)
    ]  # fmt: skip
    assert all(r.params["scale"] == 4 for r in dec)
    assert dim_sizes(space)[-1] == 4
    assert space.size == 216 * 4 == len(list(enumerate_arches(space)))


def test_per_video_latency_is_text_plus_steps_plus_decode(space) -> None:  # type: ignore[no-untyped-def]
    table = tiny_table(space)
    cm = CostModel(space, table)
    rows = {r.spec.key: r for r in table.rows.values()}
    by_op = {}
    for r in rows.values():
        by_op.setdefault(r.spec.op, []).append(r)
    text_ms = by_op["text_encoder"][0].latency_ms_p50
    for arch in list(enumerate_arches(space))[::37]:
        e = cm.evaluate(arch)
        choice = space.pipeline.choice(arch.decoder)
        dec = next(
            r for r in by_op["decoder"]
            if r.spec.frames == choice.chunk
            and r.spec.params["model"] == space.pipeline.decoder(choice.decoder).model
        )  # fmt: skip
        calls = space.geometry.frames // choice.chunk
        want = text_ms + space.geometry.steps * e.latency_ms_step + calls * dec.latency_ms_p50
        assert math.isclose(e.latency_s_video * 1e3, want, rel_tol=1e-9)
        assert math.isclose(e.latency_s_text * 1e3, text_ms)
        assert math.isclose(e.latency_s_decode * 1e3, calls * dec.latency_ms_p50)
        assert math.isclose(
            e.latency_s_unet, space.geometry.steps * e.latency_ms_step / 1e3, rel_tol=1e-12
        )
        b = cm.breakdown(arch)
        assert math.isclose(sum(b.per_video_ms.values()), e.latency_s_video * 1e3, rel_tol=1e-9)
        assert b.decoder == arch.decoder


def test_memory_counts_resident_pipeline_weights_and_largest_stage(space) -> None:  # type: ignore[no-untyped-def]
    # the decoder's working set dwarfs the UNet's: the decode stage sets the peak
    table = tiny_table(space, work_mb={"decoder": 50.0})
    cm = CostModel(space, table)
    g = len(space.groups)
    none = [0] * g
    e_vae1 = cm.evaluate_indices(np.asarray([[*none, 0]]))
    # weights: the UNet's rows, the text encoder and one decoder, each 1 MiB in this table
    unet_w = cm.evaluate_indices(np.asarray([[*none, 0]]))["weights_mb"][0]
    no_pipe = CostModel(load_space(ROOT / "search_spaces" / "tiny.yaml"), tiny_table())
    bare = no_pipe.evaluate_indices(np.asarray([none]))
    assert math.isclose(unet_w, bare["weights_mb"][0] + 2.0)
    # peak = weights + the decoder call's 50 MB + the video's latents and frames
    geo = space.geometry
    video_mb = geo.frames * (3 * 32 * 32 + 4 * 8 * 8) * 4 / 2**20
    assert math.isclose(e_vae1["peak_mem_mb"][0], unet_w + 50.0 + video_mb, rel_tol=1e-9)
    # without the pipeline the same slots cost only the UNet
    assert e_vae1["latency_s_video"][0] > bare["latency_s_video"][0]


def test_space_without_pipeline_is_unchanged() -> None:
    space = load_space(ROOT / "search_spaces" / "tiny.yaml")
    cm = CostModel(space, tiny_table())
    e = cm.evaluate(arch_from_indices(space, [1] * len(space.groups)))
    assert e.latency_s_text == 0.0 and e.latency_s_decode == 0.0
    assert math.isclose(e.latency_s_video, e.latency_s_unet)


BASE = """
name: p
backbone: {ref: tiny}
geometry: {frames: 4, latent_height: 8, latent_width: 8, text_length: 6}
slots:
  mid: [{ops: [none]}]
"""


@pytest.mark.parametrize(
    ("pipeline", "where", "says"),
    [
        (
            "{text_encoder: {ref: clip_l14}}",
            "pipeline.text_encoder config.hidden_size",
            "does not match the backbone's cross-attention width",
        ),
        (
            "{decoders: {v: {ref: tiny_clip}}}",
            "pipeline.decoders.v.ref(tiny_clip)",
            "not one of [AutoencoderKL, AutoencoderTiny]",
        ),
        (
            "{text_encoder: {ref: tiny_vae}}",
            "pipeline.text_encoder.ref(tiny_vae)",
            "not a CLIPTextModel",
        ),
        (
            "{decoders: {v: tiny_vae}, decode: [{decoder: v, chunk: 3}]}",
            "pipeline.decode[0].chunk",
            "does not divide geometry.frames = 4",
        ),
        (
            "{decoders: {v: tiny_vae}, decode: [{decoder: w}]}",
            "pipeline.decode[0].decoder",
            "is not one of ['v']",
        ),
        ("{decoders: {v: {ref: nope}}}", "pipeline.decoders.v.ref", "is not one of"),
        ("{decoders: {v: {path: ./no/such/folder}}}", "pipeline.decoders.v.path", "does not exist"),
        ("{speed: fast}", "pipeline.speed", "unknown key"),
    ],
)
def test_bad_pipeline_names_the_field(pipeline: str, where: str, says: str) -> None:
    with pytest.raises(SpaceError) as e:
        parse_space_text(BASE + f"pipeline: {pipeline}\n")
    assert e.value.where == where, str(e.value)
    assert says in str(e.value)


def test_local_folder_without_config_and_wrong_channels(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpaceError, match=r"has no config\.json"):
        parse_space_text(BASE + "pipeline: {decoders: {v: {path: empty}}}\n", base=tmp_path)
    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "config.json").write_text(
        '{"_class_name": "AutoencoderKL", "latent_channels": 16, "block_out_channels": [8]}'
    )
    with pytest.raises(SpaceError, match=r"latent_channels: 16 does not match"):
        parse_space_text(BASE + "pipeline: {decoders: {v: {path: vae}}}\n", base=tmp_path)
    (vae / "config.json").write_text(
        '{"_class_name": "StableDiffusionPipeline", "latent_channels": 4}'
    )
    with pytest.raises(SpaceError, match="point at its vae/ folder"):
        parse_space_text(BASE + "pipeline: {decoders: {v: {path: vae}}}\n", base=tmp_path)


def test_nas_space_prices_each_stage_per_decode_choice(tmp_path: Path, space) -> None:  # type: ignore[no-untyped-def]
    import json

    from nas.cli import main

    tiny_table(space).save(tmp_path / "cpu-ort")
    out = tmp_path / "out.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["space", "--space", str(TINY_PIPE), "--device", "cpu-ort",
                   "--tables", str(tmp_path), "--json"])  # fmt: skip
    assert rc == 0
    out.write_text(buf.getvalue())
    s = json.loads(out.read_text())
    assert [d["name"] for d in s["pipeline"]["decoders"]] == ["vae", "taesd"]
    assert s["pipeline"]["decoders"][0]["pixels"] == [32, 32]
    rows = s["per_video"]["arches"]
    assert {r["decode"] for r in rows} == {c.key for c in space.decode}
    for r in rows:
        total = r["latency_s_text"] + r["latency_s_unet"] + r["latency_s_decode"]
        assert math.isclose(r["latency_s_video"], total, rel_tol=1e-12)
    # chunks of 4 frames: one call instead of four, so less decode time
    by = {(r["arch"], r["decode"]): r["latency_s_decode"] for r in rows}
    assert by[("all-none", "vae/chunk4")] < by[("all-none", "vae/chunk1")]

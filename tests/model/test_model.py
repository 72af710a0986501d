"""VideoUNet and the temporal op zoo on tiny geometry: shapes, identity at init, freezing,
per-frame equivalence with the image UNet, proxy scale, local weights."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nas.errors import NasError
from nas.model import VideoUNet, build_video_unet, make_temporal_op
from nas.space import OPS, OpChoice, arch_from_dict, enumerate_arches, parse_space_text

TINY_ALL_OPS = """
name: allops
backbone: {ref: tiny}
geometry: {frames: 3, latent_height: 8, latent_width: 8, text_length: 5, cfg: true,
           precision: fp32}
op_sets:
  every:
    - none
    - {op: conv1d, kernel: [3, 5], depthwise: [true, false]}
    - {op: conv3d, kernel_t: 3, kernel_s: [1, 3]}
    - {op: attn1d, heads: 2, ffn_ratio: [0, 2], pos: [none, sinusoidal, learned]}
    - {op: attn3d, heads: 2, ffn_ratio: 2}
    - {op: xattn1d, heads: 2, ffn_ratio: 2}
    - {op: xattn3d, heads: 2, ffn_ratio: 0, pos: learned}
slots: {down: [{ops: every}], mid: [{ops: every}], up: [{ops: every}]}
"""


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return parse_space_text(TINY_ALL_OPS)


def _inputs(space, batch: int = 2, seed: int = 0):  # type: ignore[no-untyped-def]
    g = space.geometry
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(
        batch, g.latent_channels, g.frames, g.latent_height, g.latent_width, generator=gen
    )
    ctx = torch.randn(batch, g.text_length, g.text_dim, generator=gen)
    return x, torch.tensor([10, 700])[:batch], ctx


def _uniform(space, choice: OpChoice):  # type: ignore[no-untyped-def]
    return arch_from_dict(space, {"choices": {s.name: choice.to_dict() for s in space.slots}})


def _every_choice(space):  # type: ignore[no-untyped-def]
    return space.groups[0].choices


def test_every_op_keeps_shape_and_starts_as_identity(space) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    base = build_video_unet(space).eval()
    x, t, ctx = _inputs(space)
    with torch.no_grad():
        ref = base(x, t, ctx)
    assert ref.shape == x.shape
    for choice in _every_choice(space):
        model = build_video_unet(space, _uniform(space, choice)).eval()
        model.unet.load_state_dict(base.unet.state_dict())
        with torch.no_grad():
            out = model(x, t, ctx)
        assert out.shape == x.shape, choice.key
        assert torch.equal(out, ref), f"{choice.key} is not the identity at init"


def test_each_op_module_is_identity_and_mixes_frames_once_trained() -> None:
    frames, c = 4, 16
    x = torch.randn(2 * frames, c, 3, 5)
    ctx = torch.randn(2, 6, 12)
    for op in OPS:
        spec = OPS[op]
        for combo in itertools.product(*[o.allowed for o in spec.options]):
            choice = OpChoice(op, tuple(sorted(zip(spec.option_names, combo, strict=True))))
            if "heads" in spec.option_names and c % choice.get("heads"):
                continue
            m = make_temporal_op(choice, c, frames, 12, 8)
            if m is None:
                continue
            assert torch.equal(m(x, frames, ctx), x), choice.key
    # once its output projection is non-zero, changing one frame changes the others
    m = make_temporal_op(OpChoice.make("attn1d", heads=2), c, frames, 12, 8)
    assert m is not None
    torch.nn.init.normal_(m.proj_out.weight)
    x2 = x.clone()
    x2[0] += 1.0  # frame 0 of video 0
    d = (m(x2, frames, ctx) - m(x, frames, ctx)).abs().sum(dim=(1, 2, 3))
    assert d[1:frames].min() > 0  # other frames of video 0 moved
    assert d[frames:].max() == 0  # video 1 did not


def test_all_none_equals_the_image_unet_per_frame(space) -> None:  # type: ignore[no-untyped-def]
    model = build_video_unet(space).eval()
    x, t, ctx = _inputs(space)
    b, c, f, h, w = x.shape
    with torch.no_grad():
        out = model(x, t, ctx)
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        ref = model.unet(frames, t.repeat_interleave(f), ctx.repeat_interleave(f, dim=0)).sample
    torch.testing.assert_close(out, ref.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4))


def test_frozen_backbone_gets_no_gradients(space) -> None:  # type: ignore[no-untyped-def]
    choices = _every_choice(space)
    arch = arch_from_dict(
        space,
        {"choices": {s.name: choices[(i * 5 + 3) % len(choices)].to_dict()
                     for i, s in enumerate(space.slots)}},
    )  # fmt: skip
    model = build_video_unet(space, arch)
    assert all(not p.requires_grad for p in model.spatial_parameters())
    x, t, ctx = _inputs(space)
    model(x, t, ctx).square().mean().backward()
    assert all(p.grad is None for p in model.spatial_parameters())
    for name, module in model.temporal.items():
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads if g is not None), name
    model.zero_grad()
    model.freeze_spatial(False)
    model(x, t, ctx).square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.spatial_parameters())


def test_scalar_timestep_and_bad_input(space) -> None:  # type: ignore[no-untyped-def]
    model = build_video_unet(space).eval()
    x, _, ctx = _inputs(space, batch=1)
    with torch.no_grad():
        assert model(x, 500, ctx).shape == x.shape
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        model(x[:, :, 0], 500, ctx)


def test_proxy_scale_keeps_topology(space) -> None:  # type: ignore[no-untyped-def]
    arch = _uniform(space, OpChoice.make("attn1d", heads=2, ffn_ratio=2))
    full = build_video_unet(space, arch)
    small = build_video_unet(space, arch, width_mult=0.5, frames=2, latent_height=4, latent_width=4)
    assert sorted(full.temporal.keys()) == sorted(small.temporal.keys())
    assert [type(m).__name__ for m in full.modules()] == [type(m).__name__ for m in small.modules()]
    n_full = sum(p.numel() for p in full.parameters())
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < n_full / 2
    x = torch.randn(1, 4, 2, 4, 4)
    assert small(x, 3, torch.randn(1, 5, space.geometry.text_dim)).shape == x.shape


def test_weights_from_a_local_folder(space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = build_video_unet(space)
    folder = tmp_path / "unet"
    src.unet.save_pretrained(folder)  # config.json + diffusion_pytorch_model.safetensors
    text = TINY_ALL_OPS.replace("backbone: {ref: tiny}", "backbone: {path: unet}")
    local = parse_space_text(text, base=tmp_path)
    assert local.backbone.weights is not None
    model = build_video_unet(local)
    for k, v in src.unet.state_dict().items():
        assert torch.equal(model.unet.state_dict()[k], v), k
    # weights of another shape are refused with a clear message
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({"conv_in.weight": torch.zeros(1)}, str(wrong))
    bad = parse_space_text(
        text.replace("backbone: {path: unet}", "backbone: {ref: tiny, weights: wrong.safetensors}"),
        base=tmp_path,
    )
    with pytest.raises(NasError, match="does not fit the backbone config"):
        build_video_unet(bad)


def test_unknown_slot_is_an_error(space) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NasError, match="no such slot"):
        VideoUNet(space.backbone.config, space.geometry, {"down.9.0": OpChoice("none")})


@pytest.mark.slow
def test_temporal_ops_and_a_whole_video_unet_convert_to_coreml(space) -> None:  # type: ignore[no-untyped-def]
    """The real coremltools conversion (mlprogram, iOS18, FP16) runs on any OS."""
    ct = pytest.importorskip("coremltools")
    every_op = [  # one slot each, in slot order: every op kind of the zoo
        {"op": "conv1d", "kernel": 5, "depthwise": True},
        {"op": "attn1d", "heads": 2, "ffn_ratio": 2, "pos": "learned"},
        {"op": "attn3d", "heads": 2, "ffn_ratio": 2},
        {"op": "xattn1d", "heads": 2, "ffn_ratio": 2},
        {"op": "xattn3d", "heads": 2, "ffn_ratio": 0, "pos": "learned"},
        {"op": "conv3d", "kernel_s": 3},
        {"op": "conv1d", "kernel": 3, "depthwise": False},
    ]
    raw = {s.name: c for s, c in zip(space.slots, every_op, strict=True)}
    arch = arch_from_dict(space, {"choices": raw})
    assert {c.op for _, c in arch.choices} == set(OPS) - {"none"}
    model = build_video_unet(space, arch).eval()
    x, t, ctx = _inputs(space, batch=1)
    traced = torch.jit.trace(model, (x, t[:1], ctx))
    with torch.no_grad():  # the timestep is a real input of the trace, not a constant
        a, b = traced(x, torch.tensor([10]), ctx), traced(x, torch.tensor([900]), ctx)
    assert not torch.equal(a, b)
    torch.testing.assert_close(b, model(x, torch.tensor([900]), ctx))
    ml = ct.convert(
        traced,
        inputs=[ct.TensorType(name="sample", shape=x.shape),
                ct.TensorType(name="timestep", shape=(1,)),
                ct.TensorType(name="text", shape=ctx.shape)],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT16,
    )  # fmt: skip
    op_types = {op.op_type for op in ml._mil_program.functions["main"].operations}
    assert "scaled_dot_product_attention" in op_types
    assert "conv" in op_types


def test_geometry_mismatch_is_refused(space) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NasError, match="latent_height"):
        build_video_unet(space, geometry=replace(space.geometry, latent_height=7))


def test_every_arch_of_a_small_space_builds(tiny_space) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(1, 4, 4, 8, 8)
    ctx = torch.randn(1, 6, 16)
    for arch in list(enumerate_arches(tiny_space))[::23]:
        with torch.no_grad():
            assert build_video_unet(tiny_space, arch)(x, 1, ctx).shape == x.shape

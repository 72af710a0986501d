"""GeometryOverride: the one form of a geometry override (command line, proxies, training)."""

from __future__ import annotations

import json

import pytest

from nas.errors import NasError
from nas.space import Geometry, GeometryOverride, load_space


def test_fields_are_the_geometry_fields_and_none_keeps() -> None:
    assert list(GeometryOverride.__dataclass_fields__) == list(Geometry.__dataclass_fields__)
    geo = load_space("tiny").geometry
    assert GeometryOverride().apply(geo) == geo and GeometryOverride().to_dict() == {}
    changed = GeometryOverride(frames=2, cfg=True).apply(geo)
    assert (changed.frames, changed.cfg, changed.latent_height) == (2, True, geo.latent_height)
    assert GeometryOverride.between(geo, changed) == GeometryOverride(frames=2, cfg=True)


def test_spatial_batch_folds_frames_into_the_batch() -> None:
    geo = GeometryOverride(batch=2, cfg=True, frames=3).apply(load_space("tiny").geometry)
    assert geo.effective_batch == 4 and geo.spatial_batch == 12


def test_parse_types_values_by_field() -> None:
    o = GeometryOverride.parse(["frames=8", "cfg=true", "precision=fp32", " latent_width = 16"])
    assert o == GeometryOverride(frames=8, latent_width=16, cfg=True, precision="fp32")
    assert o.items() == [("frames", 8), ("latent_width", 16), ("cfg", True), ("precision", "fp32")]
    assert GeometryOverride.parse(["frames=2", "frames=4"]).frames == 4  # the last one wins
    assert GeometryOverride.parse([]) == GeometryOverride()


@pytest.mark.parametrize(
    ("items", "needle"),
    [
        (["frame=2"], "geometry override 'frame' is not a geometry field; fields: frames, "),
        (["frames=two"], "geometry.frames: 'two' is not an integer"),
        (["frames=0"], "geometry.frames: 0 must be >= 1"),
        (["cfg=yes"], "geometry.cfg: 'yes' is not true or false"),
        (["precision=fp8"], "geometry.precision: 'fp8' is not one of ['fp32', 'fp16']"),
        (["frames"], "geometry override 'frames': expected key=value, e.g. frames=4"),
    ],
)
def test_parse_errors_name_the_key_and_value(items: list[str], needle: str) -> None:
    with pytest.raises(NasError) as e:
        GeometryOverride.parse(items)
    assert needle in str(e.value)


def test_round_trips_as_the_plain_mapping_run_files_hold() -> None:
    o = GeometryOverride.from_dict({"latent_width": 8, "frames": 4, "cfg": False})
    assert o.to_dict() == {"cfg": False, "frames": 4, "latent_width": 8}  # sorted, set fields
    assert GeometryOverride.from_dict(json.loads(json.dumps(o.to_dict()))) == o
    assert GeometryOverride.coerce(None) == GeometryOverride() and GeometryOverride.coerce(o) is o
    assert GeometryOverride.coerce({"frames": 4}) == GeometryOverride(frames=4)
    assert o.merged(GeometryOverride(frames=2, batch=3)) == GeometryOverride(
        frames=2, latent_width=8, batch=3, cfg=False
    )
    with pytest.raises(NasError, match=r"geometry\.frames: true is not an integer"):
        GeometryOverride.from_dict({"frames": True})
    with pytest.raises(NasError, match="expected a mapping"):
        GeometryOverride.from_dict([("frames", 4)])  # type: ignore[arg-type]

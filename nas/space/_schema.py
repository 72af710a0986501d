"""The search-space schema: frozen dataclasses parsed once from YAML.

Every error names the YAML path of the bad value, the value, and what is allowed, e.g.
``slots.up[2].ops[1].kernel: 4 is not one of [3, 5, 7]``. Unknown keys are errors.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from math import prod
from pathlib import Path
from typing import Any

from nas import backbone_config, list_backbones, resolve_space
from nas.errors import NasError, SpaceError
from nas.space._ops import OPS, OptionValue
from nas.space._pipeline import DecodeChoice, Pipeline, parse_pipeline
from nas.space._unet import Block, UNetConfig, parse_unet_config, plan_blocks
from nas.space._yaml import load_yaml_file, load_yaml_text

__all__ = [
    "Backbone",
    "Geometry",
    "GeometryOverride",
    "OpChoice",
    "SearchSpace",
    "Slot",
    "SlotGroup",
    "load_space",
    "parse_space",
]

PRECISIONS = {"fp32": 4, "fp16": 2}


# ---------------------------------------------------------------------------------------------
# dataclasses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """What one generation call looks like: the video latent, the text and the sampler."""

    frames: int  # T, latent frames
    latent_height: int  # H of the latent (pixels / VAE factor)
    latent_width: int  # W of the latent
    latent_channels: int  # C of the latent; equals the backbone's in_channels
    text_length: int  # L, text tokens
    text_dim: int  # D, text embedding width; equals the backbone's cross_attention_dim
    batch: int  # videos per call
    cfg: bool  # classifier-free guidance doubles the UNet batch
    steps: int  # denoising steps per video
    precision: str  # "fp16" | "fp32"

    @property
    def effective_batch(self) -> int:
        """The batch the UNet runs at: ``batch``, doubled with classifier-free guidance."""
        return self.batch * (2 if self.cfg else 1)

    @property
    def spatial_batch(self) -> int:
        """The batch spatial blocks run at: ``effective_batch * frames``.

        Spatial (2-D) blocks see every frame as its own image, so frames fold into the batch.
        """
        return self.effective_batch * self.frames

    @property
    def bytes_per_element(self) -> int:
        return PRECISIONS[self.precision]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class GeometryOverride:
    """Geometry fields to change; a field left ``None`` keeps the base geometry's value.

    The one type for geometry overrides: ``--geometry frames=8`` on the command line
    (:meth:`parse`), a proxy's ``geometry`` option, ``TrainConfig.geometry`` (saved in run
    folders as :meth:`to_dict`, a plain mapping of the set fields). Each set field is checked
    as the space loader checks it; checks against a backbone (divisibility, channels) are the
    caller's, since proxy-scale models change ``text_dim`` on purpose.
    """

    frames: int | None = None
    latent_height: int | None = None
    latent_width: int | None = None
    latent_channels: int | None = None
    text_length: int | None = None
    text_dim: int | None = None
    batch: int | None = None
    cfg: bool | None = None
    steps: int | None = None
    precision: str | None = None

    def __post_init__(self) -> None:
        for key, value in self.items():
            _check_geometry_field(key, value, f"geometry.{key}")

    def items(self) -> list[tuple[str, Any]]:
        """The set fields as ``(name, value)`` pairs, in :class:`Geometry`'s field order."""
        return [(k, getattr(self, k)) for k in _GEOMETRY_KEYS if getattr(self, k) is not None]

    @classmethod
    def parse(cls, items: Sequence[str]) -> GeometryOverride:
        """``["frames=8", "cfg=true"]`` (command-line ``key=value`` items), typed by field."""
        values: dict[str, Any] = {}
        for item in items:
            key, sep, text = item.partition("=")
            if not sep:
                raise NasError(f"geometry override {item!r}: expected key=value, e.g. frames=4")
            _known_geometry_key(key.strip())
            values[key.strip()] = _typed_geometry_text(key.strip(), text.strip())
        return cls(**values)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> GeometryOverride:
        """The inverse of :meth:`to_dict`; an unknown key is a ``NasError`` listing the fields."""
        if not isinstance(raw, Mapping):
            raise NasError(f"geometry overrides: expected a mapping, got {_kind(raw)}")
        for key in raw:
            _known_geometry_key(key)
        return cls(**{str(k): v for k, v in raw.items()})

    @classmethod
    def coerce(cls, value: GeometryOverride | Mapping[str, Any] | None) -> GeometryOverride:
        """``value`` itself, a mapping through :meth:`from_dict`, or no override for None."""
        if value is None:
            return cls()
        return value if isinstance(value, GeometryOverride) else cls.from_dict(value)

    @classmethod
    def between(cls, base: Geometry, target: Geometry) -> GeometryOverride:
        """The override that takes ``base`` to ``target``: the fields where they differ."""
        return cls(**{k: v for k, v in target.to_dict().items() if getattr(base, k) != v})

    def to_dict(self) -> dict[str, Any]:
        """The set fields, sorted by name (stable for hashing and for run files)."""
        return dict(sorted(self.items()))

    def merged(self, other: GeometryOverride) -> GeometryOverride:
        """These overrides with ``other``'s set fields on top."""
        return replace(self, **dict(other.items()))

    def apply(self, geometry: Geometry) -> Geometry:
        """``geometry`` with the set fields replaced."""
        return replace(geometry, **dict(self.items()))


@dataclass(frozen=True)
class OpChoice:
    """One temporal op with every option resolved. ``options`` is sorted by name."""

    op: str
    options: tuple[tuple[str, OptionValue], ...] = ()

    @property
    def key(self) -> str:
        """Canonical text, e.g. ``attn1d(ffn_ratio=4,heads=8,pos=sinusoidal)``."""
        if not self.options:
            return self.op
        inner = ",".join(f"{k}={_fmt(v)}" for k, v in self.options)
        return f"{self.op}({inner})"

    def get(self, name: str) -> Any:
        for k, v in self.options:
            if k == name:
                return v
        raise KeyError(f"{self.op} has no option {name!r}")

    def to_dict(self) -> str | dict[str, Any]:
        if not self.options:
            return self.op
        return {"op": self.op, **dict(self.options)}

    @staticmethod
    def make(op: str, **options: OptionValue) -> OpChoice:
        """A choice with unspecified options at their defaults (unknown names raise)."""
        spec = OPS[op]
        unknown = set(options) - set(spec.option_names)
        if unknown:
            raise KeyError(
                f"{op} has no option(s) {sorted(unknown)}; it has {list(spec.option_names)}"
            )
        resolved = {o.name: options.get(o.name, o.default) for o in spec.options}
        return OpChoice(op, tuple(sorted(resolved.items())))

    def __str__(self) -> str:
        return self.key


def _fmt(v: OptionValue) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


@dataclass(frozen=True)
class Slot:
    """A place a temporal layer may go, with the tensor shape it sees per frame."""

    name: str  # "<stage>.<level>.<index>", e.g. "up.1.2"
    stage: str  # "down" | "mid" | "up"
    level: int  # 0 = highest resolution
    index: int  # position among the ResNet(+attention) pairs of its block
    channels: int
    height: int
    width: int


@dataclass(frozen=True)
class SlotGroup:
    """Slots that take one choice together (a single slot when not tied)."""

    name: str
    slots: tuple[str, ...]
    choices: tuple[OpChoice, ...]
    where: str  # the YAML path of the entry that defined it


@dataclass(frozen=True)
class Backbone:
    """The spatial UNet: where it came from and its parsed config."""

    source: str  # "ref:<name>" | "config" | "path:<abs path>"
    config: UNetConfig
    weights: str | None  # a local safetensors file or diffusers folder, if any
    freeze_spatial: bool


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated temporal search space. Build with :func:`load_space`."""

    name: str
    description: str
    backbone: Backbone
    geometry: Geometry
    blocks: tuple[Block, ...]  # the per-step plan, slots included
    slots: tuple[Slot, ...]  # every slot of the backbone, in execution order
    groups: tuple[SlotGroup, ...]  # the searchable groups; uncovered slots are fixed "none"
    source: str | None  # the file it was read from
    hash: str  # of the semantic content (not comments or formatting)
    pipeline: Pipeline | None = None  # text encoder and decoders around the UNet, if given

    @property
    def decode(self) -> tuple[DecodeChoice, ...]:
        """The decode choices (a search dimension after the slot groups); empty if none."""
        return () if self.pipeline is None else self.pipeline.decode

    @property
    def size(self) -> int:
        """The exact number of distinct arches (a Python int, however large)."""
        return prod(len(g.choices) for g in self.groups) * max(1, len(self.decode))

    def slot(self, name: str) -> Slot:
        for s in self.slots:
            if s.name == name:
                return s
        raise KeyError(f"no slot {name!r}; slots: {', '.join(s.name for s in self.slots)}")

    def group_of(self, slot_name: str) -> SlotGroup | None:
        for g in self.groups:
            if slot_name in g.slots:
                return g
        return None

    def to_dict(self) -> dict[str, Any]:
        """The semantic content, canonical; what :attr:`hash` is computed from."""
        return _semantic_dict(self.backbone, self.geometry, self.groups, self.pipeline)


def _semantic_dict(
    backbone: Backbone,
    geometry: Geometry,
    groups: Iterable[SlotGroup],
    pipeline: Pipeline | None = None,
) -> dict[str, Any]:
    out = {
        # the modelled fields, so the same network hashes the same however its config was
        # written (diffusers' save_pretrained writes every default key)
        "backbone": {
            k: getattr(backbone.config, k)
            for k in backbone.config.__dataclass_fields__
            if k != "diffusers_json"
        },
        "geometry": geometry.to_dict(),
        "groups": [{"slots": list(g.slots), "choices": [c.key for c in g.choices]} for g in groups],
    }
    if pipeline is not None:  # absent from spaces without one, so their hashes stay as they were
        out["pipeline"] = pipeline.to_dict()
    return out


def _plan(cfg: UNetConfig, geometry: Geometry) -> tuple[tuple[Block, ...], tuple[Slot, ...]]:
    """The per-step block plan at ``geometry`` and the slots in it."""
    blocks = plan_blocks(cfg, geometry.latent_height, geometry.latent_width)
    slots = tuple(
        Slot(b.name, b.stage, b.level, b.index, b.out_channels, b.height, b.width)
        for b in blocks
        if b.kind == "temporal"
    )
    return blocks, slots


def _digest(
    backbone: Backbone,
    geometry: Geometry,
    groups: Iterable[SlotGroup],
    pipeline: Pipeline | None = None,
) -> str:
    payload = json.dumps(_semantic_dict(backbone, geometry, groups, pipeline), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# parsing helpers: each names the YAML path
# ---------------------------------------------------------------------------------------------


def _mapping(
    value: Any, where: str, allowed: Iterable[str], required: Iterable[str] = ()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpaceError(where or "(top level)", f"expected a mapping, got {_kind(value)}")
    allowed = list(allowed)
    for key in value:
        if key not in allowed:
            raise SpaceError(
                _join(where, str(key)), f"unknown key; allowed keys: {', '.join(allowed)}"
            )
    for key in required:
        if key not in value:
            raise SpaceError(_join(where, key), "is required")
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if value == [] or value == {}:
        return f"an empty {'list' if isinstance(value, list) else 'mapping'}"
    names = {
        dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
        int: "an integer", float: "a number",
    }  # fmt: skip
    return names.get(type(value), f"a {type(value).__name__}")


def _int(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpaceError(where, f"{_show(value)} is not an integer")
    if value < minimum:
        raise SpaceError(where, f"{value} must be >= {minimum}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpaceError(where, f"{_show(value)} is not true or false")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpaceError(where, f"{_show(value)} is not a non-empty string")
    return value


def _show(v: Any) -> str:
    """A value as YAML spells it: true/false/null, else its repr (cut at 80 characters: an error
    line names a value, it does not reprint a file)."""
    if v is None:
        return "null"
    text = _fmt(v) if isinstance(v, bool) else repr(v)
    return text if len(text) <= 80 else f"{text[:76]} ..."


def _one_of(value: Any, allowed: Iterable[Any], where: str) -> Any:
    allowed = list(allowed)
    for a in allowed:  # bool is an int subclass: true must not match 1
        if value == a and type(value) is type(a):
            return a
    shown = ", ".join(_show(a) for a in allowed)
    raise SpaceError(where, f"{_show(value)} is not one of [{shown}]")


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------


def _parse_backbone(raw: Any, base: Path | None) -> Backbone:
    m = _mapping(raw, "backbone", ("ref", "config", "path", "weights", "freeze_spatial"))
    given = [k for k in ("ref", "config", "path") if k in m]
    if len(given) != 1:
        raise SpaceError(
            "backbone",
            "give exactly one of ref (a bundled name: "
            f"{', '.join(list_backbones())}), config (a diffusers UNet2DConditionModel "
            f"config) or path (a local diffusers folder or config.json); got {given or 'none'}",
        )
    weights: str | None = None
    if "ref" in m:
        name = _one_of(m["ref"], list_backbones(), "backbone.ref")
        cfg = parse_unet_config(backbone_config(name), f"backbone.ref({name})")
        source = f"ref:{name}"
    elif "config" in m:
        if not isinstance(m["config"], dict):
            raise SpaceError(
                "backbone.config",
                f"expected a mapping (a diffusers config), got {_kind(m['config'])}",
            )
        for key in m["config"]:  # parse_unet_config assumes string keys
            if not isinstance(key, str):
                raise SpaceError(f"backbone.config.{key}", "unknown config key (not a string)")
        cfg = parse_unet_config(m["config"], "backbone.config")
        source = "config"
    else:
        p = _local_path(m["path"], base, "backbone.path")
        cfg_file = p / "config.json" if p.is_dir() else p
        if not cfg_file.is_file():
            raise SpaceError(
                "backbone.path", f"{str(p)!r} has no config.json (a diffusers UNet folder)"
            )
        try:
            raw_cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SpaceError("backbone.path", f"{str(cfg_file)!r} is not valid JSON: {e}") from None
        except OSError as e:
            msg = f"{str(cfg_file)!r} cannot be read: {e.strerror or e}"
            raise SpaceError("backbone.path", msg) from None
        cfg = parse_unet_config(raw_cfg, "backbone.path(config.json)")
        source = f"path:{p}"
        if p.is_dir():
            w = p / "diffusion_pytorch_model.safetensors"
            weights = str(w) if w.is_file() else None
    if "weights" in m:
        w = _local_path(m["weights"], base, "backbone.weights")
        if w.suffix != ".safetensors" and not w.is_dir():
            raise SpaceError(
                "backbone.weights", f"{str(w)!r} is not a .safetensors file or a folder"
            )
        weights = str(w)
    freeze = _bool(m.get("freeze_spatial", True), "backbone.freeze_spatial")
    return Backbone(source, cfg, weights, freeze)


def _local_path(value: Any, base: Path | None, where: str) -> Path:
    s = _str(value, where)
    if "://" in s:
        raise SpaceError(
            where, f"{s!r} looks like a URL; nas never downloads models: give a local path"
        )
    try:
        p = Path(s).expanduser()
        if not p.is_absolute() and base is not None:
            p = base / p
        exists = p.exists()
    except (RuntimeError, OSError) as e:  # ~unknownuser, a name too long for the filesystem
        reason = getattr(e, "strerror", None) or e
        raise SpaceError(where, f"{s!r} is not a usable path: {reason}") from None
    if not exists:
        raise SpaceError(where, f"{str(p)!r} does not exist")
    return p.resolve()


_GEOMETRY_KEYS = (
    "frames", "latent_height", "latent_width", "latent_channels", "text_length", "text_dim",
    "batch", "cfg", "steps", "precision",
)  # fmt: skip


def _parse_geometry(raw: Any, cfg: UNetConfig) -> Geometry:
    m = _mapping(raw, "geometry", _GEOMETRY_KEYS, ("frames", "latent_height", "latent_width"))
    values = {
        "latent_channels": cfg.in_channels,
        "text_length": 77,
        "text_dim": cfg.cross_attention_dim,
        "batch": 1,
        "cfg": False,
        "steps": 4,
        "precision": "fp16",
        **m,
    }
    for key in _GEOMETRY_KEYS:
        _check_geometry_field(key, values[key], f"geometry.{key}")
    g = Geometry(**values)
    check_geometry(g, cfg)
    return g


def _check_geometry_field(key: str, value: Any, where: str) -> None:
    """One geometry value, as the loader and :class:`GeometryOverride` check it."""
    if key == "cfg":
        _bool(value, where)
    elif key == "precision":
        _one_of(value, PRECISIONS, where)
    else:
        _int(value, where)


def _known_geometry_key(key: Any) -> None:
    if key not in _GEOMETRY_KEYS:
        raise NasError(
            f"geometry override {key!r} is not a geometry field; fields: "
            + ", ".join(_GEOMETRY_KEYS)
        )


def _typed_geometry_text(key: str, text: str) -> Any:
    """A command-line value as its field's type; text that is not one is left for the check."""
    if key == "cfg":
        return {"true": True, "false": False}.get(text.lower(), text)
    if key == "precision":
        return text
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else text


def check_geometry(g: Geometry, cfg: UNetConfig) -> None:
    """Geometry against the backbone: channels, text width, divisibility by the downsampling."""
    f = cfg.downsample_factor
    for key in ("latent_height", "latent_width"):
        v = getattr(g, key)
        if v % f:
            raise SpaceError(
                f"geometry.{key}",
                f"{v} is not divisible by {f} (the backbone halves it at each of its "
                f"{cfg.levels - 1} downsamplers); try {max(f, round(v / f) * f)}",
            )
    if g.latent_channels != cfg.in_channels:
        raise SpaceError(
            "geometry.latent_channels",
            f"{g.latent_channels} does not match the backbone's in_channels {cfg.in_channels}",
        )
    if g.text_dim != cfg.cross_attention_dim:
        raise SpaceError(
            "geometry.text_dim",
            f"{g.text_dim} does not match the backbone's cross_attention_dim "
            f"{cfg.cross_attention_dim}",
        )


def _parse_ops(raw: Any, where: str, op_sets: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The op entries of a slot entry, with their YAML paths; a name refers to ``op_sets``."""
    if isinstance(raw, str):
        if raw not in op_sets:
            known = list(op_sets) or ["(no op_sets defined)"]
            raise SpaceError(where, f"{raw!r} is not a list of ops nor one of the op_sets {known}")
        where = f"op_sets.{raw}"
        raw = op_sets[raw]
    if not isinstance(raw, list) or not raw:
        raise SpaceError(where, f"expected a non-empty list of ops, got {_kind(raw)}")
    return [(f"{where}[{i}]", item) for i, item in enumerate(raw)]


def _expand_op(raw: Any, where: str) -> tuple[str, list[tuple[str, list[OptionValue]]]]:
    """One op entry -> (op name, [(option, allowed values given)...]); defaults filled later."""
    if isinstance(raw, str):  # a bare name: every option at its default
        name = _one_of(raw, OPS, where)
        return name, [(o.name, [o.default]) for o in OPS[name].options]
    if not isinstance(raw, dict):
        raise SpaceError(where, f"expected an op name or a mapping with 'op', got {_kind(raw)}")
    if "op" not in raw:
        raise SpaceError(_join(where, "op"), f"is required; one of {list(OPS)}")
    name = _one_of(raw["op"], OPS, f"{where}.op")
    spec = OPS[name]
    _mapping(raw, where, ("op", *spec.option_names))
    opts: list[tuple[str, list[OptionValue]]] = []
    for opt in spec.options:
        if opt.name not in raw:
            opts.append((opt.name, [opt.default]))
            continue
        value = raw[opt.name]
        values = value if isinstance(value, list) else [value]
        if not values:
            raise SpaceError(f"{where}.{opt.name}", f"empty list; allowed: {list(opt.allowed)}")
        w = f"{where}.{opt.name}"
        checked = [
            _one_of(v, opt.allowed, w + (f"[{i}]" if isinstance(value, list) else ""))
            for i, v in enumerate(values)
        ]
        opts.append((opt.name, checked))
    return name, opts


def _selector(value: Any, allowed: list[int], where: str, what: str) -> list[int]:
    if value == "all":
        return list(allowed)
    values = value if isinstance(value, list) else [value]
    out = []
    for i, v in enumerate(values):
        w = where + (f"[{i}]" if isinstance(value, list) else "")
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpaceError(w, f"{_show(v)} is not an integer, a list of them, or 'all'")
        if v not in allowed:
            raise SpaceError(w, f"{v} is not one of {allowed} ({what})")
        out.append(v)
    if not out:
        raise SpaceError(where, "empty list")
    return out


def _parse_slots(
    raw: Any, op_sets: Mapping[str, Any], slots: tuple[Slot, ...]
) -> tuple[SlotGroup, ...]:
    m = _mapping(raw, "slots", ("down", "mid", "up"))
    by_stage: dict[str, list[Slot]] = {"down": [], "mid": [], "up": []}
    for s in slots:
        by_stage[s.stage].append(s)
    covered: dict[str, str] = {}
    groups: list[SlotGroup] = []
    for stage in ("down", "mid", "up"):
        entries = m.get(stage, [])
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise SpaceError(
                f"slots.{stage}", f"expected a list of slot entries, got {_kind(entries)}"
            )
        stage_slots = by_stage[stage]
        if entries and not stage_slots:
            raise SpaceError(
                f"slots.{stage}", f"the backbone has no {stage} slots (no {stage} block)"
            )
        for i, entry in enumerate(entries):
            where = f"slots.{stage}[{i}]"
            e = _mapping(entry, where, ("level", "index", "ops", "tie"), ("ops",))
            levels = sorted({s.level for s in stage_slots})
            lv = _selector(e.get("level", "all"), levels, f"{where}.level", f"{stage} levels")
            chosen = [s for s in stage_slots if s.level in lv]
            if "index" in e:
                idx_allowed = sorted({s.index for s in chosen})
                idx = _selector(e["index"], idx_allowed, f"{where}.index",
                                f"slot indices at {stage} level(s) {lv}")  # fmt: skip
                chosen = [s for s in chosen if s.index in idx]
            for s in chosen:
                if s.name in covered:
                    msg = f"slot {s.name} is already covered by {covered[s.name]}"
                    raise SpaceError(where, msg)
                covered[s.name] = where
            tie = _bool(e.get("tie", False), f"{where}.tie")
            choice_sets = [_choices_for(e["ops"], f"{where}.ops", op_sets, s) for s in chosen]
            if tie:
                names = tuple(s.name for s in chosen)
                groups.append(SlotGroup("tied:" + ",".join(names), names, choice_sets[0], where))
            else:
                for s, cs in zip(chosen, choice_sets, strict=True):
                    groups.append(SlotGroup(s.name, (s.name,), cs, where))
    if not groups:
        raise SpaceError("slots", "no slot has any op choice; list at least one slot entry")
    return tuple(groups)


def _choices_for(
    raw: Any, where: str, op_sets: Mapping[str, Any], slot: Slot
) -> tuple[OpChoice, ...]:
    out: dict[str, OpChoice] = {}
    for op_where, item in _parse_ops(raw, where, op_sets):
        name, opts = _expand_op(item, op_where)
        if "heads" in dict(opts):
            given = item.get("heads") if isinstance(item, dict) else None
            for i, h in enumerate(dict(opts)["heads"]):
                if slot.channels % h:
                    raise SpaceError(
                        f"{op_where}.heads" + (f"[{i}]" if isinstance(given, list) else ""),
                        f"{h} heads do not divide slot {slot.name}'s {slot.channels} channels"
                        + ("" if given is not None else " (the default; set heads)"),
                    )
        names = [k for k, _ in opts]
        from itertools import product

        for combo in product(*[v for _, v in opts]):
            choice = OpChoice(name, tuple(sorted(zip(names, combo, strict=True))))
            out.setdefault(choice.key, choice)
    return tuple(out.values())


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------

_TOP_KEYS = ("name", "description", "backbone", "geometry", "op_sets", "slots", "pipeline")


def parse_space(raw: Any, source: str | None = None, base: Path | None = None) -> SearchSpace:
    """Validate a space given as plain data (what ``yaml.safe_load`` returns)."""
    try:
        m = _mapping(raw, "", _TOP_KEYS, ("name", "backbone", "geometry", "slots"))
        name = _str(m["name"], "name")
        description = m.get("description", "")
        if not isinstance(description, str):
            raise SpaceError("description", f"{description!r} is not a string")
        backbone = _parse_backbone(m["backbone"], base)
        geometry = _parse_geometry(m["geometry"], backbone.config)
        op_sets = m.get("op_sets")
        if op_sets is None:
            op_sets = {}
        if not isinstance(op_sets, dict):
            raise SpaceError(
                "op_sets", f"expected a mapping of name -> list of ops, got {_kind(op_sets)}"
            )
        for set_name, items in op_sets.items():
            w = f"op_sets.{set_name}"
            if not isinstance(set_name, str):
                raise SpaceError(w, f"a set name must be a string, got {_kind(set_name)}; quote it")
            if not isinstance(items, list) or not items:
                raise SpaceError(w, f"expected a non-empty list of ops, got {_kind(items)}")
        blocks, slots = _plan(backbone.config, geometry)
        groups = _parse_slots(m["slots"], op_sets, slots)
        for set_name, items in op_sets.items():  # validate sets even if no slot uses them
            for w, item in _parse_ops(items, f"op_sets.{set_name}", {}):
                _expand_op(item, w)
        pipeline = None
        if m.get("pipeline") is not None:
            pipeline = parse_pipeline(
                m["pipeline"],
                base,
                frames=geometry.frames,
                latent_channels=geometry.latent_channels,
                text_dim=geometry.text_dim,
                text_length=geometry.text_length,
            )
    except SpaceError as e:
        raise (e.with_source(source) if source and not e.source else e) from None
    digest = _digest(backbone, geometry, groups, pipeline)
    return SearchSpace(
        name, description, backbone, geometry, blocks, slots, groups, source, digest, pipeline
    )


def with_geometry(space: SearchSpace, **overrides: Any) -> SearchSpace:
    """The same space (backbone, slots, choices) at another geometry, e.g. ``frames=4``.

    Unknown fields raise ``TypeError``; a geometry the backbone cannot take a ``SpaceError``.
    """
    from dataclasses import replace

    geo = replace(space.geometry, **overrides)
    check_geometry(geo, space.backbone.config)
    blocks, slots = _plan(space.backbone.config, geo)
    digest = _digest(space.backbone, geo, space.groups, space.pipeline)
    return replace(space, geometry=geo, blocks=blocks, slots=slots, hash=digest)


def load_space(path: str | Path) -> SearchSpace:
    """Load a space from a YAML file, or a bundled space by name (``temporal``).

    A relative path that does not exist is looked up among the bundled spaces by file name,
    so ``search_spaces/temporal.yaml`` works from any directory once nas is installed.
    """
    p = resolve_space(str(path))
    if p != Path(path).expanduser():  # a bundled space: say which file was really read
        path = p
    raw = load_yaml_file(p)
    return parse_space(raw, str(path), p.parent)


def parse_space_text(text: str, source: str = "<string>", base: Path | None = None) -> SearchSpace:
    return parse_space(load_yaml_text(text, source), source, base)

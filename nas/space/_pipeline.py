"""The pipeline around the UNet: the text encoder and the decoders a space may choose from.

A user waits for text encoding (once per video), the denoising steps and decoding the latents
into frames. The ``pipeline:`` section of a space names those models (bundled configs or local
folders saved with ``save_pretrained``) and the decode choices the search picks from::

    pipeline:
      text_encoder: {ref: clip_l14}         # or {path: ./sd15/text_encoder}
      decoders:
        sd_vae: {ref: sd_vae}               # SD's AutoencoderKL
        tiny: {ref: taesd}                  # diffusers' AutoencoderTiny
      decode:                               # the search dimension
        - {decoder: [sd_vae, tiny], chunk: [1, 4]}

Pure Python: configs are read as JSON and checked against the geometry (latent channels, text
width and length) here; the models are built by ``nas.pipeline``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from nas import list_pipeline_models, pipeline_config
from nas.errors import SpaceError

__all__ = ["DecodeChoice", "Pipeline", "PipelinePart", "parse_pipeline"]

# the model families a pipeline part may be, by role: family -> how its config names it
TEXT_FAMILIES = {"clip_text": "transformers CLIPTextModel"}
DECODER_FAMILIES = {
    "autoencoder_kl": "diffusers AutoencoderKL",
    "autoencoder_tiny": "diffusers AutoencoderTiny",
}
_DECODER_CLASSES = {"AutoencoderKL": "autoencoder_kl", "AutoencoderTiny": "autoencoder_tiny"}
# weight files a local folder may hold, in the order they are looked for
_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")


@dataclass(frozen=True)
class PipelinePart:
    """One model of the pipeline: the text encoder or a decoder, with its config."""

    name: str  # "text_encoder", or the decoder's name in the space
    role: str  # "text_encoder" | "decoder"
    family: str  # "clip_text" | "autoencoder_kl" | "autoencoder_tiny"
    source: str  # "ref:<bundled name>" | "path:<absolute folder>"
    config_json: str  # the model config, canonical JSON (sorted keys, no "_" keys)
    weights: str | None  # a local safetensors file, if the folder has one

    @cached_property
    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.config_json)
        return out

    @property
    def digest(self) -> str:
        """8 hex characters of the config: table rows of another config never match."""
        return hashlib.sha256(self.config_json.encode()).hexdigest()[:8]

    @property
    def model(self) -> str:
        """The name rows and reports use: the bundled name, else the space's name for it."""
        return self.source[4:] if self.source.startswith("ref:") else self.name

    @property
    def scale_factor(self) -> int:
        """Pixels per latent pixel along each side (decoders only)."""
        c = self.config
        if self.family == "autoencoder_kl":
            return int(2 ** (len(c["block_out_channels"]) - 1))
        if self.family == "autoencoder_tiny":
            ups = int(c.get("upsampling_scaling_factor", 2))
            return int(ups ** (len(c["decoder_block_out_channels"]) - 1))
        raise ValueError(f"{self.name} is a {self.role}, not a decoder")

    @property
    def width(self) -> int:
        """The text encoder's embedding width (its hidden size)."""
        return int(self.config["hidden_size"])

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "family": self.family, "config": self.digest}


@dataclass(frozen=True)
class DecodeChoice:
    """How a video's latents become frames: which decoder, and latent frames per call."""

    decoder: str  # a name in ``pipeline.decoders``
    chunk: int  # latent frames decoded per call (1 = frame by frame)

    @property
    def key(self) -> str:
        return f"{self.decoder}/chunk{self.chunk}"

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Pipeline:
    """The text encoder (or none) and the decode choices of a space."""

    text_encoder: PipelinePart | None
    decoders: tuple[PipelinePart, ...]
    decode: tuple[DecodeChoice, ...]  # the search dimension; empty when there is no decoder

    def decoder(self, name: str) -> PipelinePart:
        for d in self.decoders:
            if d.name == name:
                return d
        raise KeyError(f"no decoder {name!r}; decoders: {', '.join(d.name for d in self.decoders)}")

    def choice(self, key: str) -> DecodeChoice:
        for c in self.decode:
            if c.key == key:
                return c
        shown = ", ".join(c.key for c in self.decode)
        raise KeyError(f"no decode choice {key!r}; choices: {shown}")

    def to_dict(self) -> dict[str, Any]:
        """The semantic content (what the space hash covers)."""
        return {
            "text_encoder": None if self.text_encoder is None else self.text_encoder.to_dict(),
            "decoders": {d.name: d.to_dict() for d in self.decoders},
            "decode": [c.key for c in self.decode],
        }


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


def parse_pipeline(
    raw: Any,
    base: Path | None,
    *,
    frames: int,
    latent_channels: int,
    text_dim: int,
    text_length: int,
) -> Pipeline:
    """Validate a ``pipeline:`` section against the space's geometry."""
    from nas.space._schema import _kind, _mapping

    m = _mapping(raw, "pipeline", ("text_encoder", "decoders", "decode"))
    text = None
    if m.get("text_encoder") is not None:
        text = _parse_part(m["text_encoder"], "text_encoder", "text_encoder", base)
        _check_text(text, text_dim, text_length)
    raw_decoders = m.get("decoders") or {}
    if not isinstance(raw_decoders, dict):
        raise SpaceError(
            "pipeline.decoders", f"expected a mapping of name -> model, got {_kind(raw_decoders)}"
        )
    decoders = []
    for name, spec in raw_decoders.items():
        if not isinstance(name, str) or not name.strip() or "/" in name or "," in name:
            raise SpaceError(f"pipeline.decoders.{name}", "a decoder name is a word (no / or ,)")
        part = _parse_part(spec, name, "decoder", base)
        _check_decoder(part, latent_channels)
        decoders.append(part)
    decode = _parse_decode(m.get("decode"), [d.name for d in decoders], frames)
    return Pipeline(text, tuple(decoders), decode)


def _parse_part(raw: Any, name: str, role: str, base: Path | None) -> PipelinePart:
    from nas.space._schema import _local_path, _mapping, _one_of

    where = f"pipeline.{name}" if role == "text_encoder" else f"pipeline.decoders.{name}"
    if isinstance(raw, str):  # shorthand: a bundled name
        raw = {"ref": raw}
    m = _mapping(raw, where, ("ref", "path"))
    if len(m) != 1:
        raise SpaceError(
            where,
            f"give exactly one of ref (bundled: {', '.join(list_pipeline_models())}) or path "
            "(a local folder saved with save_pretrained)",
        )
    weights = None
    if "ref" in m:
        ref = _one_of(m["ref"], list_pipeline_models(), f"{where}.ref")
        cfg = pipeline_config(ref)
        source = f"ref:{ref}"
        cfg_where = f"{where}.ref({ref})"
    else:
        folder = _local_path(m["path"], base, f"{where}.path")
        cfg, weights = _read_folder(folder, f"{where}.path")
        source = f"path:{folder}"
        cfg_where = f"{where}.path(config.json)"
    family = _family(cfg, role, cfg_where)
    clean = {k: v for k, v in cfg.items() if not k.startswith("_")}
    if family == "clip_text":
        clean.pop("architectures", None)
    canonical = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return PipelinePart(name, role, family, source, canonical, weights)


def _read_folder(folder: Path, where: str) -> tuple[dict[str, Any], str | None]:
    cfg_file = folder / "config.json" if folder.is_dir() else folder
    if not cfg_file.is_file():
        raise SpaceError(
            where,
            f"{str(folder)!r} has no config.json: give the folder a diffusers or transformers "
            "model was saved to (save_pretrained)",
        )
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpaceError(where, f"{str(cfg_file)!r} is not valid JSON: {e}") from None
    except OSError as e:
        raise SpaceError(where, f"{str(cfg_file)!r} cannot be read: {e.strerror or e}") from None
    if not isinstance(cfg, dict):
        raise SpaceError(where, f"{str(cfg_file)!r} does not hold a JSON object")
    folder = cfg_file.parent
    weights = next((str(folder / w) for w in _WEIGHT_FILES if (folder / w).is_file()), None)
    return cfg, weights


def _family(cfg: dict[str, Any], role: str, where: str) -> str:
    """The model family a config describes, or an error naming what it is and what fits."""
    cls = cfg.get("_class_name")
    archs = cfg.get("architectures") or []
    model_type = cfg.get("model_type")
    if role == "text_encoder":
        if model_type == "clip_text_model" or "CLIPTextModel" in archs:
            return "clip_text"
        if model_type == "clip":
            raise SpaceError(
                where,
                "is a whole CLIPModel config; point at its text model (a CLIPTextModel folder, "
                "e.g. an SD-1.5 checkout's text_encoder/)",
            )
        what = cls or (archs[0] if archs else model_type) or "an unknown model"
        raise SpaceError(
            where, f"is {what}, not a CLIPTextModel; the text encoder must be a CLIP text model"
        )
    if cls in _DECODER_CLASSES:
        return _DECODER_CLASSES[cls]
    what = cls or (archs[0] if archs else model_type) or "an unknown model (no _class_name)"
    allowed = ", ".join(_DECODER_CLASSES)
    hint = (
        " (a whole pipeline folder? point at its vae/ folder)" if cls and "Pipeline" in cls else ""
    )
    raise SpaceError(where, f"is {what}, not one of [{allowed}]{hint}")


def _check_text(part: PipelinePart, text_dim: int, text_length: int) -> None:
    where = "pipeline.text_encoder"
    c = part.config
    for key in ("hidden_size", "max_position_embeddings", "num_hidden_layers", "vocab_size"):
        if not isinstance(c.get(key), int) or isinstance(c.get(key), bool):
            raise SpaceError(f"{where} config.{key}", f"{c.get(key)!r} is not an integer")
    if c["hidden_size"] != text_dim:
        raise SpaceError(
            f"{where} config.hidden_size",
            f"{c['hidden_size']} does not match the backbone's cross-attention width "
            f"(geometry.text_dim = {text_dim}): use a text encoder of width {text_dim}",
        )
    if c["max_position_embeddings"] < text_length:
        raise SpaceError(
            f"{where} config.max_position_embeddings",
            f"{c['max_position_embeddings']} is shorter than geometry.text_length = "
            f"{text_length}: lower text_length or use a longer text encoder",
        )


def _check_decoder(part: PipelinePart, latent_channels: int) -> None:
    where = f"pipeline.decoders.{part.name} config"
    c = part.config
    lc = c.get("latent_channels", 4)
    if lc != latent_channels:
        raise SpaceError(
            f"{where}.latent_channels",
            f"{lc!r} does not match the backbone's latent channels (geometry.latent_channels "
            f"= {latent_channels}): use a decoder for {latent_channels}-channel latents",
        )
    key = "block_out_channels" if part.family == "autoencoder_kl" else "decoder_block_out_channels"
    chans = c.get(key)
    if not isinstance(chans, list) or not chans or not all(isinstance(x, int) for x in chans):
        raise SpaceError(f"{where}.{key}", f"{chans!r} is not a list of channel counts")


def _parse_decode(raw: Any, names: list[str], frames: int) -> tuple[DecodeChoice, ...]:
    from nas.space._schema import _int, _kind, _mapping, _one_of

    if raw is None:  # each decoder frame by frame
        return tuple(DecodeChoice(n, 1) for n in names)
    if not names:
        raise SpaceError("pipeline.decode", "there are no pipeline.decoders to choose from")
    if not isinstance(raw, list) or not raw:
        raise SpaceError("pipeline.decode", f"expected a non-empty list, got {_kind(raw)}")
    out: list[DecodeChoice] = []
    for i, item in enumerate(raw):
        where = f"pipeline.decode[{i}]"
        m = _mapping(item, where, ("decoder", "chunk"), ("decoder",))
        decs = m["decoder"] if isinstance(m["decoder"], list) else [m["decoder"]]
        chunks = m.get("chunk", 1)
        chunks = chunks if isinstance(chunks, list) else [chunks]
        for d in decs:
            _one_of(d, names, f"{where}.decoder")
            for ch in chunks:
                _int(ch, f"{where}.chunk")
                if frames % ch:
                    raise SpaceError(
                        f"{where}.chunk",
                        f"{ch} does not divide geometry.frames = {frames}: pick a divisor",
                    )
                c = DecodeChoice(d, ch)
                if c in out:
                    raise SpaceError(where, f"{c.key} is listed twice")
                out.append(c)
    return tuple(out)

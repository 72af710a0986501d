"""The pipeline around the UNet as PyTorch modules: text encoder, decoders, encoders.

``nas.space`` parses a space's ``pipeline:`` section (pure Python); this package builds its
models and runs them: ``nas generate`` (:func:`generate`), ``nas encode``
(:func:`encode_videos`) and ``nas export --pipeline`` (:func:`export_pipeline`). Importing it
imports torch (and transformers on first use of a text encoder).

The modules take tensors only, so the profilers time them and the exporters convert them:

- ``build_text_encoder(part) -> TextEncoder``: ``forward(input_ids (B, L) int64) -> (B, L, D)``
  (the last hidden state); ``build_tokenizer(part)(prompts, L) -> input_ids``.
- ``build_decoder(part) -> Decoder``: ``forward(latents (N, C, h, w)) -> frames
  (N, 3, h*f, w*f)`` in [-1, 1]; ``decode_video(decoder, latents (B, C, T, h, w), chunk) ->
  (B, 3, T, H, W)``, ``chunk`` frames per call.
- ``build_encoder(part) -> Encoder``: ``forward(frames (N, 3, H, W) in [-1, 1]) -> latents
  (N, C, H/f, W/f)``, scaled as the UNet sees them.

Weights load only from a part's local folder; a part without weights is randomly initialised
and says so once on stderr. ``load_weights=False`` skips both (the profilers' cheap build).
"""

from nas.pipeline._encode import EncodeReport, encode_videos
from nas.pipeline._export import PipelineExport, export_pipeline
from nas.pipeline._generate import GenerateResult, generate
from nas.pipeline._media import write_mp4, write_png_strip
from nas.pipeline._parts import (
    Decoder,
    Encoder,
    TextEncoder,
    Tokenizer,
    build_decoder,
    build_encoder,
    build_text_encoder,
    build_tokenizer,
    decode_video,
)

__all__ = [
    "Decoder",
    "EncodeReport",
    "Encoder",
    "GenerateResult",
    "PipelineExport",
    "TextEncoder",
    "Tokenizer",
    "build_decoder",
    "build_encoder",
    "build_text_encoder",
    "build_tokenizer",
    "decode_video",
    "encode_videos",
    "export_pipeline",
    "generate",
    "write_mp4",
    "write_png_strip",
]

"""The pipeline around the UNet as PyTorch modules: text encoder and decoders.

``nas.space`` parses a space's ``pipeline:`` section (pure Python); this package builds its
models. Importing it imports torch (and transformers on first use of a text encoder).
"""

from nas.pipeline._parts import (
    Decoder,
    TextEncoder,
    build_decoder,
    build_text_encoder,
    decode_video,
)

__all__ = ["Decoder", "TextEncoder", "build_decoder", "build_text_encoder", "decode_video"]

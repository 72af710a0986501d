"""Writing generated videos: an MP4 (H.264 through PyAV) and a PNG strip of the frames."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from nas.errors import NasError
from nas.extras import require
from nas.fileio import unwritable_ancestor

__all__ = ["check_out_path", "to_uint8", "write_mp4", "write_png_strip"]


def check_out_path(out: Path, suffix: str, flag: str = "--out") -> None:
    """Fail before any work when ``out`` cannot be written: not a folder, a folder that
    cannot be made or written to, a wrong suffix."""
    if out.suffix.lower() != suffix:
        raise NasError(f"{flag} {out}: must end in {suffix} (e.g. clip{suffix})")
    if out.is_dir():
        raise NasError(f"{flag} {out}: is a folder; give a file in it, e.g. {out}/clip{suffix}")
    folder = out.parent if str(out.parent) else Path(".")
    existing = unwritable_ancestor(folder)
    if existing is not None:
        raise NasError(
            f"{flag} {out}: the folder {folder} cannot be written to ({existing} is not a "
            "writable folder); give a path in a folder you can write to"
        )


def to_uint8(frames: torch.Tensor, scale: int = 1) -> np.ndarray:
    """``(3, T, H, W)`` in [-1, 1] -> ``(T, H*scale, W*scale, 3)`` uint8 (nearest upscaling)."""
    x = ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    x = x.permute(1, 2, 3, 0)  # (T, H, W, 3)
    if scale > 1:
        x = x.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    return x.contiguous().numpy()


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> Path:
    """``(T, H, W, 3)`` uint8 -> an H.264 MP4 (yuv420p: odd sizes are padded by one pixel)."""
    av = require("av", purpose="writing an MP4 (nas generate)")
    t, h, w, _ = frames.shape
    ph, pw = h + h % 2, w + w % 2
    if (ph, pw) != (h, w):
        frames = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": "18"}
        for k in range(t):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[k]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_png_strip(path: Path, videos: list[np.ndarray], gap: int = 2) -> Path:
    """Each video ``(T, H, W, 3)`` uint8 as one row of its frames, ``gap`` white pixels apart,
    as an 8-bit RGB PNG (zlib, no dependency)."""
    t, h, w, _ = videos[0].shape
    rows = len(videos)
    img = np.full((rows * h + (rows - 1) * gap, t * w + (t - 1) * gap, 3), 255, np.uint8)
    for r, v in enumerate(videos):
        for k in range(t):
            y, x = r * (h + gap), k * (w + gap)
            img[y : y + h, x : x + w] = v[k]
    height, width = img.shape[:2]
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(height))  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    )
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path

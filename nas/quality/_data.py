"""Video datasets for training and proxies: procedural moving digits and real-data folders.

Every dataset is map-style and yields ``{"video": (C, T, H, W) float32, "text": (L, D) float32,
"caption": str}`` at a space's geometry, so the trainer never cares where items come from:

- :class:`ProceduralVideos`: digits that move with a named direction and speed, made on the fly,
  item ``i`` a pure function of ``(seed, split, i)``. Motion is what a per-frame image model
  cannot produce: each frame alone is a plausible image, but only a model that sees the other
  frames can keep the digit's identity, colour and a velocity that matches the caption.
- :class:`VideoFolder`: real video files (decoded with PyAV), frames sampled and resized to the
  latent size; pixels stand in for latents. For smoke tests and small real data.
- :class:`LatentsFolder`: pre-encoded latents and text embeddings, how one trains at real scale.

Captions become text tensors through :class:`ToyTextEncoder`: a deterministic word -> id
tokenizer and a fixed seeded embedding table, no download, the same on every machine.
"""

from __future__ import annotations

import hashlib
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch.utils.data import Dataset

from nas.errors import NasError
from nas.quality._defaults import DEFAULT_BACKGROUND, DEFAULT_COLOURS, DEFAULT_DIFFICULTY
from nas.space import Geometry

__all__ = [
    "DIFFICULTIES",
    "DIRECTIONS",
    "SPEEDS",
    "LatentsFolder",
    "ObjectMotion",
    "ProceduralVideos",
    "ToyTextEncoder",
    "VideoFolder",
    "VideoItem",
    "VideoSpec",
    "open_dataset",
    "write_latents",
]


class VideoItem(TypedDict):
    """One dataset item: what every loader here returns."""

    video: torch.Tensor  # (C, T, H, W) float32, roughly in [-1, 1]
    text: torch.Tensor  # (L, D) float32 text embeddings
    caption: str


# ---------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------

# Ids 2.. for the words procedural captions use, so they never collide; 0 pads, 1 is unused.
_KNOWN_WORDS = (
    *(str(d) for d in range(10)),
    "moves",
    "left",
    "right",
    "up",
    "down",
    "slow",
    "fast",
    "speeding",
    "slowing",
    "and",
    "bouncing",
    "in",
    "front",
    "behind",
    "a",
    "the",
    "video",
    "of",
)


class ToyTextEncoder:
    """Captions -> ``(text_length, text_dim)`` tensors, deterministic and download-free.

    Words are lower-cased runs of letters and digits (``"up-left"`` is two words). Words that
    procedural captions use get fixed ids; any other word gets an id from a BLAKE2 hash of its
    text (stable across processes and machines; rare collisions are harmless). Each id maps to
    a row of a fixed table drawn from ``seed``, plus a sinusoidal position code so word order
    matters ("3 moves left, 7 moves up" differs from "7 moves left, 3 moves up"). Positions
    past the caption are zeros; longer captions are cut to ``text_length`` words.
    """

    def __init__(
        self, text_length: int, text_dim: int, *, vocab_size: int = 1024, seed: int = 0
    ) -> None:
        if text_length < 1 or text_dim < 1:
            raise NasError(f"text shape must be positive, got ({text_length}, {text_dim})")
        if vocab_size < len(_KNOWN_WORDS) + 3:
            raise NasError(f"vocab_size must be at least {len(_KNOWN_WORDS) + 3}")
        self.text_length = text_length
        self.text_dim = text_dim
        self.vocab_size = vocab_size
        self.seed = seed
        rng = np.random.default_rng([seed, 0x7E47])
        table = rng.standard_normal((vocab_size, text_dim)).astype(np.float32)
        table[0] = 0.0
        self._table = table
        self._pos = 0.5 * _sinusoidal(text_length, text_dim)
        self._known = {w: i + 2 for i, w in enumerate(_KNOWN_WORDS)}

    def words(self, caption: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", caption.lower())

    def tokenize(self, caption: str) -> list[int]:
        """Token ids of the caption's words (no padding, not cut)."""
        out = []
        first_free = len(_KNOWN_WORDS) + 2
        for w in self.words(caption):
            if w in self._known:
                out.append(self._known[w])
            else:
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "big")
                out.append(first_free + h % (self.vocab_size - first_free))
        return out

    def encode(self, caption: str) -> torch.Tensor:
        """``(text_length, text_dim)`` float32 embeddings of the caption."""
        ids = self.tokenize(caption)[: self.text_length]
        out = np.zeros((self.text_length, self.text_dim), dtype=np.float32)
        if ids:
            out[: len(ids)] = self._table[ids] + self._pos[: len(ids)]
        return torch.from_numpy(out)


def _sinusoidal(n: int, dim: int) -> np.ndarray:
    pos = np.arange(n, dtype=np.float64)[:, None]
    half = max(dim // 2, 1)
    freq = np.exp(-math.log(10000.0) * np.arange(half) / half)
    table = np.zeros((n, dim), dtype=np.float32)
    table[:, 0 : 2 * (dim // 2) : 2] = np.sin(pos * freq)[:, : dim // 2]
    table[:, 1 : 2 * (dim // 2) : 2] = np.cos(pos * freq)[:, : dim // 2]
    return table


# ---------------------------------------------------------------------------------------------
# procedural moving digits
# ---------------------------------------------------------------------------------------------

DIFFICULTIES = ("easy", "medium", "hard")
COLOURS = ("random", "positive")  # signs of the digits' colour vectors
MAX_BACKGROUND = 0.5
# (dy, dx) per direction name, y pointing down the frame
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (0.0, 1.0),
    "left": (0.0, -1.0),
    "up": (-1.0, 0.0),
    "down": (1.0, 0.0),
    "up-right": (-math.sqrt(0.5), math.sqrt(0.5)),
    "up-left": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "down-right": (math.sqrt(0.5), math.sqrt(0.5)),
    "down-left": (math.sqrt(0.5), -math.sqrt(0.5)),
}
# distance travelled over the whole clip, as a share of the frame's shorter side
SPEEDS: dict[str, float] = {"slow": 0.25, "fast": 0.6}
_SPLITS = ("train", "val", "test")

# 5x7 bitmap digits: no dependency, identical on every machine
_FONT = {
    0: (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    1: ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    2: (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    3: ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    4: ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    5: ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    6: ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    7: ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    8: (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    9: (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
}


@cache
def _font_glyph(digit: int) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in _FONT[digit]], dtype=np.float32)


@cache
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten 8x8 digits (UCI), in [0, 1], and their labels.

    Read straight from the CSV the package ships (importing sklearn costs a second per
    process, DataLoader workers included); ``load_digits`` if that file ever moves.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        from nas.extras import install_command

        raise NasError(
            "procedural videos with glyphs='sklearn' (the default) need scikit-learn for its "
            f"bundled 8x8 handwritten digits: {install_command('train')}, or pass glyphs='font'"
        )
    csv_gz = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if csv_gz.is_file():
        raw = np.loadtxt(csv_gz, delimiter=",", dtype=np.float32)
        images, targets = raw[:, :-1].reshape(-1, 8, 8), raw[:, -1]
    else:
        import importlib

        d = importlib.import_module("sklearn.datasets").load_digits()
        images, targets = d.images, d.target
    return (np.asarray(images, np.float32) / 16.0), np.asarray(targets, np.int64)


@dataclass(frozen=True)
class ObjectMotion:
    """One digit of a procedural video and where it is in each frame."""

    digit: int
    direction: str  # a key of DIRECTIONS
    speed: str  # a key of SPEEDS
    change: str  # "" (constant speed), "speeding up" or "slowing down"
    colour: tuple[float, ...]  # its value in each latent channel
    size: float  # glyph height in pixels
    centres: tuple[tuple[float, float], ...]  # (y, x) in pixels, per frame

    @property
    def phrase(self) -> str:
        """e.g. ``3 moves left fast`` or ``7 moves up slow speeding up``."""
        text = f"{self.digit} moves {self.direction} {self.speed}"
        return f"{text} {self.change}" if self.change else text


@dataclass(frozen=True)
class VideoSpec:
    """Everything a procedural item shows: its caption and each object's motion, back to front."""

    caption: str
    objects: tuple[ObjectMotion, ...]


class VideoShape(TypedDict):
    frames: int
    height: int
    width: int
    channels: int
    text_length: int
    text_dim: int


def geometry_shape(geometry: Geometry) -> VideoShape:
    """A geometry's video and text shape as :class:`ProceduralVideos` keywords (frames,
    height, width, channels, text_length, text_dim)."""
    g = geometry
    return VideoShape(
        frames=g.frames,
        height=g.latent_height,
        width=g.latent_width,
        channels=g.latent_channels,
        text_length=g.text_length,
        text_dim=g.text_dim,
    )


class ProceduralVideos(Dataset[VideoItem]):
    """Moving digits, made on the fly: item ``i`` is a pure function of ``(seed, split, i)``.

    Each video has 1-3 digits over a static, smooth background: scikit-learn's 8x8 handwritten
    digits (``glyphs="sklearn"``, 1,797 images: each video draws its own instance of each
    digit, so keeping a digit's look across frames takes temporal modelling) or 5x7 bitmap
    glyphs (``glyphs="font"``, no dependency). Each digit has a colour vector in
    channel space (latent channels are not RGB) and moves in one of 8 named directions, slow or
    fast; the caption names them in drawing order, e.g. ``"3 moves left fast, 7 moves up slow"``.

    ``difficulty``:
      - ``easy``: one digit, constant velocity, stays in the frame.
      - ``medium``: two digits, constant speed, bouncing off the frame's edges.
      - ``hard``: three digits that bounce, may occlude each other (later ones are drawn in
        front) and may be "speeding up" or "slowing down".

    Values lie in [-1, 1]: the background within +-(2 x ``background``), digits up to +-0.9 in
    their colour; ``background=0`` gives a flat zero background.

    ``colours``: ``"random"`` draws each digit's colour vector with random signs, so the mean
    video given a caption is nearly zero and a caption tells an MSE-trained model next to
    nothing at high noise; ``"positive"`` makes every channel of it positive (digits brighter
    than the background), so the caption's motion shows in the mean video.
    """

    def __init__(
        self,
        *,
        frames: int,
        height: int,
        width: int,
        channels: int,
        text_length: int,
        text_dim: int,
        difficulty: str = DEFAULT_DIFFICULTY,
        seed: int = 0,
        split: str = "train",
        length: int = 100_000,
        glyphs: str = "sklearn",
        background: float = DEFAULT_BACKGROUND,
        text_seed: int = 0,
        colours: str = DEFAULT_COLOURS,
    ) -> None:
        if difficulty not in DIFFICULTIES:
            raise NasError(f"difficulty {difficulty!r} is not one of {list(DIFFICULTIES)}")
        if split not in _SPLITS:
            raise NasError(f"split {split!r} is not one of {list(_SPLITS)}")
        if glyphs not in ("font", "sklearn"):
            raise NasError(f"glyphs {glyphs!r} is not one of ['font', 'sklearn']")
        for name, v in (
            ("frames", frames),
            ("height", height),
            ("width", width),
            ("channels", channels),
            ("length", length),
        ):
            if v < 1:
                raise NasError(f"{name} must be >= 1, got {v}")
        self.frames, self.height, self.width, self.channels = frames, height, width, channels
        self.difficulty = difficulty
        self.seed = seed
        self.split = split
        self.length = length
        self.glyphs = glyphs
        if not 0.0 <= background <= MAX_BACKGROUND:
            raise NasError(f"background must be in [0, {MAX_BACKGROUND}], got {background}")
        self.background = background
        if colours not in COLOURS:
            raise NasError(f"colours {colours!r} is not one of {list(COLOURS)}")
        self.colours = colours
        self.text = ToyTextEncoder(text_length, text_dim, seed=text_seed)
        if glyphs == "sklearn":
            _sklearn_digits()  # fail now, not in a worker

    @classmethod
    def for_geometry(cls, geometry: Geometry, **options: Any) -> ProceduralVideos:
        """The dataset at a space's (or proxy's) geometry; options as for the constructor."""
        return cls(**geometry_shape(geometry), **options)

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} videos")
        return np.random.default_rng([self.seed, _SPLITS.index(self.split), index])

    def describe(self, index: int) -> VideoSpec:
        """The caption and motion of item ``index`` (what :meth:`__getitem__` renders)."""
        return self._spec(self._rng(index))

    def __getitem__(self, index: int) -> VideoItem:
        rng = self._rng(index)
        spec = self._spec(rng)
        video = self._background(rng)
        for obj in spec.objects:
            alpha = self._render(obj, rng)  # (T, H, W)
            colour = np.asarray(obj.colour, dtype=np.float32)[:, None, None, None]
            video = video * (1.0 - alpha[None]) + colour * alpha[None]
        return {
            "video": torch.from_numpy(np.clip(video, -1.0, 1.0).astype(np.float32)),
            "text": self.text.encode(spec.caption),
            "caption": spec.caption,
        }

    # -- the recipe ---------------------------------------------------------------------------

    def _spec(self, rng: np.random.Generator) -> VideoSpec:
        n = DIFFICULTIES.index(self.difficulty) + 1
        digits = rng.choice(10, size=n, replace=False)
        short = min(self.height, self.width)
        size_range = {"easy": (0.4, 0.55), "medium": (0.35, 0.5), "hard": (0.3, 0.45)}
        colours = self._colours(rng, n)
        objects = []
        for k in range(n):
            direction = str(rng.choice(list(DIRECTIONS)))
            speed = str(rng.choice(list(SPEEDS)))
            change = ""
            if self.difficulty == "hard" and rng.random() < 0.5:
                change = str(rng.choice(["speeding up", "slowing down"]))
            size = float(rng.uniform(*size_range[self.difficulty])) * short
            centres = self._path(rng, direction, speed, change, size)
            objects.append(
                ObjectMotion(int(digits[k]), direction, speed, change, colours[k], size, centres)
            )
        caption = ", ".join(o.phrase for o in objects)
        return VideoSpec(caption, tuple(objects))

    def _colours(self, rng: np.random.Generator, n: int) -> list[tuple[float, ...]]:
        """Distinct per-object colour vectors in channel space, max |value| 0.9."""
        out: list[tuple[float, ...]] = []
        while len(out) < n:
            v = rng.standard_normal(self.channels)
            if self.colours == "positive":
                v = np.abs(v)
            v = 0.9 * v / max(float(np.abs(v).max()), 1e-6)
            if all(float(np.abs(v - np.asarray(o)).max()) > 0.3 for o in out):
                out.append(tuple(float(x) for x in v))
        return out

    def _path(
        self, rng: np.random.Generator, direction: str, speed: str, change: str, size: float
    ) -> tuple[tuple[float, float], ...]:
        t_count = self.frames
        dy, dx = DIRECTIONS[direction]
        travel = SPEEDS[speed] * min(self.height, self.width)
        u = np.linspace(0.0, 1.0, t_count) if t_count > 1 else np.zeros(1)
        if change == "speeding up":
            s = u**2
        elif change == "slowing down":
            s = 1.0 - (1.0 - u) ** 2
        else:
            s = u
        half = 0.5 * size
        aspect = 5 / 7 if self.glyphs == "font" else 1.0  # glyph width / height
        lo = np.array([half, half * aspect])
        hi = np.array([self.height - half, self.width - half * aspect])
        hi = np.maximum(hi, lo)
        d = np.array([dy, dx]) * travel
        if self.difficulty == "easy":
            # start so the whole path stays inside: no bounce, a constant velocity
            start_lo = np.maximum(lo, lo - d)
            start_hi = np.minimum(hi, hi - d)
            start = np.where(
                start_lo <= start_hi,
                rng.uniform(np.minimum(start_lo, start_hi), np.maximum(start_lo, start_hi)),
                0.5 * (lo + hi) - 0.5 * d,
            )
        else:
            start = rng.uniform(lo, hi)
        raw = start[None, :] + s[:, None] * d[None, :]
        pos = _reflect(raw, lo, hi) if self.difficulty != "easy" else raw
        return tuple((float(y), float(x)) for y, x in pos)

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        """A static smooth field per channel, within +-2 ``background``, the same in every frame."""
        c, t, h, w = self.channels, self.frames, self.height, self.width
        y = (np.arange(h) + 0.5)[:, None] / h
        x = (np.arange(w) + 0.5)[None, :] / w
        bg = np.zeros((c, h, w), dtype=np.float32)
        for ch in range(c):
            fy, fx = rng.uniform(-1.5, 1.5, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            offset = rng.uniform(-1.0, 1.0)
            bg[ch] = self.background * (np.cos(2 * np.pi * (fy * y + fx * x) + phase) + offset)
        return np.repeat(bg[:, None], t, axis=1)

    def _glyph(self, digit: int, rng: np.random.Generator) -> np.ndarray:
        if self.glyphs == "font":
            return _font_glyph(digit)
        images, targets = _sklearn_digits()
        pick = rng.choice(np.flatnonzero(targets == digit))
        glyph: np.ndarray = images[int(pick)]
        return glyph

    def _render(self, obj: ObjectMotion, rng: np.random.Generator) -> np.ndarray:
        """The digit's coverage (alpha in [0, 1]) per frame, bilinearly sampled at sub-pixel
        positions so slow motion moves it smoothly."""
        glyph = self._glyph(obj.digit, rng)
        gh, gw = glyph.shape
        gh_px = obj.size
        gw_px = obj.size * gw / gh
        padded = np.pad(glyph, 1)
        centres = np.asarray(obj.centres)  # (T, 2)
        ys = np.arange(self.height) + 0.5
        xs = np.arange(self.width) + 0.5
        # pixel -> glyph coordinates (cell centres at integers), +1 for the padding
        gy = (ys[None, :] - centres[:, :1] + gh_px / 2) / gh_px * gh - 0.5 + 1  # (T, H)
        gx = (xs[None, :] - centres[:, 1:] + gw_px / 2) / gw_px * gw - 0.5 + 1  # (T, W)
        gy = np.clip(gy, 0, gh + 1)
        gx = np.clip(gx, 0, gw + 1)
        y0 = np.clip(np.floor(gy).astype(np.int64), 0, gh)
        x0 = np.clip(np.floor(gx).astype(np.int64), 0, gw)
        wy = (gy - y0)[:, :, None]
        wx = (gx - x0)[:, None, :]
        y0b, x0b = y0[:, :, None], x0[:, None, :]
        a = (
            padded[y0b, x0b] * (1 - wy) * (1 - wx)
            + padded[y0b + 1, x0b] * wy * (1 - wx)
            + padded[y0b, x0b + 1] * (1 - wy) * wx
            + padded[y0b + 1, x0b + 1] * wy * wx
        )
        alpha: np.ndarray = np.clip(a, 0.0, 1.0).astype(np.float32)
        return alpha


def _reflect(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Positions folded back into [lo, hi] per axis: a bounce off the frame's edges."""
    span = np.maximum(hi - lo, 1e-6)
    q = np.mod(p - lo, 2 * span)
    out: np.ndarray = lo + np.where(q > span, 2 * span - q, q)
    return out


# ---------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")


def _caption_for(path: Path) -> str:
    """A sidecar ``<stem>.txt`` if there is one, else the file name with _ - . as spaces."""
    side = path.with_name(_stem(path) + ".txt")
    if side.is_file():
        return side.read_text(encoding="utf-8").strip()
    return re.sub(r"[_\-.]+", " ", _stem(path)).strip()


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".latents.npy", ".text.npy"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


class VideoFolder(Dataset[VideoItem]):
    """Video files in a folder (``.mp4``, ``.avi``, ``.mov``, ...), decoded with PyAV.

    Item ``i`` is the ``i``-th file in name order: ``frames`` frames spread evenly over the
    clip (or every ``frame_stride``-th frame from the start, the last one repeated when the clip
    is short), centre-cropped to the latent's aspect ratio and resized (antialiased bilinear) to
    ``latent_height x latent_width``, scaled to [-1, 1]. Pixels stand in for latents: channels
    are R, G, B, then luma, cycling if the space has more. The caption is a ``<stem>.txt``
    beside the file, else the file name (``dog_runs-left.mp4`` -> ``dog runs left``), encoded
    with :class:`ToyTextEncoder`. Needs the ``video`` extra (PyAV).
    """

    def __init__(
        self,
        root: str | Path,
        geometry: Geometry,
        *,
        frame_stride: int | None = None,
        text_seed: int = 0,
    ) -> None:
        _import_av()
        self.root = Path(root)
        if not self.root.is_dir():
            raise NasError(f"video folder not found: {self.root}")
        self.files = sorted(
            p for p in self.root.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
        )
        if not self.files:
            raise NasError(
                f"{self.root}: no video files ({', '.join(VIDEO_EXTENSIONS)}); for latents use "
                "*.safetensors or *.npz files (LatentsFolder)"
            )
        if frame_stride is not None and frame_stride < 1:
            raise NasError(f"frame_stride must be >= 1, got {frame_stride}")
        self.geometry = geometry
        self.frame_stride = frame_stride
        self.text = ToyTextEncoder(geometry.text_length, geometry.text_dim, seed=text_seed)
        self._mix = torch.from_numpy(_channel_mix(geometry.latent_channels))

    def __len__(self) -> int:
        return len(self.files)

    def _indices(self, n: int) -> list[int]:
        t = self.geometry.frames
        if self.frame_stride is None:
            return [round(x) for x in np.linspace(0, n - 1, t)] if t > 1 else [0]
        return [min(k * self.frame_stride, n - 1) for k in range(t)]

    def _decode(self, path: Path) -> np.ndarray:
        """The sampled frames ``(T, h, w, 3)`` uint8. When the container knows its frame count,
        decoding stops at the last frame needed and only the needed frames are converted."""
        av = _import_av()
        kept: dict[int, np.ndarray] = {}
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise NasError(f"{path}: has no video stream")
                stream = container.streams.video[0]
                known = int(stream.frames or 0)
                wanted = set(self._indices(known)) if known > 0 else None
                count = 0
                for frame in container.decode(stream):
                    if wanted is None or count in wanted:
                        kept[count] = frame.to_ndarray(format="rgb24")
                    count += 1
                    if wanted is not None and count > max(wanted):
                        break
        except NasError:
            raise
        except Exception as e:  # PyAV raises its own error types for corrupt files
            raise NasError(f"{path}: cannot be decoded as video: {e}") from None
        if not kept:
            raise NasError(f"{path}: has no decodable frames")
        # a container may claim more frames than it holds: fall back to the last one decoded
        idx = self._indices(known if known > 0 and count >= known else count)
        return np.stack([kept[max(k for k in kept if k <= i)] for i in idx])

    def __getitem__(self, index: int) -> VideoItem:
        import torch.nn.functional as F

        path = self.files[index]
        frames = torch.from_numpy(self._decode(path))
        x = frames.permute(0, 3, 1, 2).float()  # (T, 3, h, w)
        g = self.geometry
        x = _centre_crop(x, g.latent_height / g.latent_width)
        x = F.interpolate(
            x,
            size=(g.latent_height, g.latent_width),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        x = x / 127.5 - 1.0
        video = torch.einsum("kc,tchw->kthw", self._mix, x).clamp(-1.0, 1.0).contiguous()
        caption = _caption_for(path)
        return {"video": video, "text": self.text.encode(caption), "caption": caption}


def _import_av() -> Any:
    from nas.extras import require

    return require("av", purpose="a VideoFolder (decoding video files)")


def _centre_crop(x: torch.Tensor, aspect: float) -> torch.Tensor:
    """Crop (T, C, h, w) to height/width == aspect around the centre."""
    h, w = x.shape[-2:]
    if h / w > aspect:
        nh = max(1, round(w * aspect))
        top = (h - nh) // 2
        return x[..., top : top + nh, :]
    nw = max(1, round(h / aspect))
    left = (w - nw) // 2
    return x[..., :, left : left + nw]


def _channel_mix(channels: int) -> np.ndarray:
    """(channels, 3): R, G, B, luma, R, G, ... ; one channel is luma alone."""
    rows = [np.eye(3, dtype=np.float32)[i] for i in range(3)]
    rows.append(np.array([0.299, 0.587, 0.114], dtype=np.float32))
    if channels == 1:
        return np.stack(rows[3:4])
    return np.stack([rows[i % 4] for i in range(channels)])


@dataclass(frozen=True)
class _LatentEntry:
    path: Path  # the file holding the latents
    kind: str  # "safetensors" | "npz" | "npy"
    text_path: Path | None  # npy pairs: the text file
    has_text: bool


class LatentsFolder(Dataset[VideoItem]):
    """Pre-encoded videos: ``latents`` ``(C, T, H, W)`` and ``text`` ``(L, D)`` per file.

    A folder of any mix of:
      - ``NAME.safetensors`` with tensors ``latents`` and ``text`` (caption in the metadata key
        ``caption``; :func:`write_latents` writes these),
      - ``NAME.npz`` with arrays ``latents`` and ``text`` (and optionally ``caption``),
      - pairs ``NAME.latents.npy`` + ``NAME.text.npy``.

    ``text`` may be left out: the caption (metadata, ``NAME.txt``, else the file name) is then
    encoded with :class:`ToyTextEncoder`. Shapes are checked against the geometry when the
    folder is opened (headers only), so a mismatch fails before training starts.
    """

    def __init__(self, root: str | Path, geometry: Geometry, *, text_seed: int = 0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NasError(f"latents folder not found: {self.root}")
        self.geometry = geometry
        self.text = ToyTextEncoder(geometry.text_length, geometry.text_dim, seed=text_seed)
        g = geometry
        self.latent_shape = (g.latent_channels, g.frames, g.latent_height, g.latent_width)
        self.text_shape = (g.text_length, g.text_dim)
        self.entries: list[_LatentEntry] = []
        for p in sorted(self.root.iterdir()):
            if p.name.endswith(".text.npy") or not p.is_file():
                continue
            if p.suffix == ".safetensors":
                self.entries.append(self._check_safetensors(p))
            elif p.suffix == ".npz":
                self.entries.append(self._check_npz(p))
            elif p.name.endswith(".latents.npy"):
                self.entries.append(self._check_npy(p))
        if not self.entries:
            raise NasError(
                f"{self.root}: no latents (*.safetensors, *.npz or *.latents.npy + *.text.npy); "
                "write them with nas.quality.write_latents"
            )

    def __len__(self) -> int:
        return len(self.entries)

    def _check(self, path: Path, name: str, shape: Sequence[int] | None) -> None:
        expected = self.latent_shape if name == "latents" else self.text_shape
        what = "(C, T, H, W)" if name == "latents" else "(L, D)"
        fields = (
            "latent_channels, frames, latent_height, latent_width"
            if name == "latents"
            else "text_length, text_dim"
        )
        if shape is None:
            raise NasError(
                f"{path}: has no {name!r} array (expected shape {what} = {_shape_str(expected)})"
            )
        if tuple(int(s) for s in shape) != expected:
            raise NasError(
                f"{path}: {name} has shape {_shape_str(shape)}, expected {what} = "
                f"{_shape_str(expected)} from the geometry ({fields}); re-encode the data at "
                "this geometry or train at the data's geometry (--geometry)"
            )

    def _check_safetensors(self, p: Path) -> _LatentEntry:
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                keys = set(f.keys())
                shapes = {k: f.get_slice(k).get_shape() for k in keys & {"latents", "text"}}
        except Exception as e:
            raise NasError(f"{p}: not a readable safetensors file: {e}") from None
        self._check(p, "latents", shapes.get("latents"))
        if "text" in shapes:
            self._check(p, "text", shapes["text"])
        return _LatentEntry(p, "safetensors", None, "text" in shapes)

    def _check_npz(self, p: Path) -> _LatentEntry:
        try:
            with zipfile.ZipFile(p) as z:
                names = {n.removesuffix(".npy"): n for n in z.namelist()}
                shapes = {}
                for key in ("latents", "text"):
                    if key in names:
                        with z.open(names[key]) as f:
                            fmt: Any = np.lib.format  # untyped in numpy's stubs
                            version = fmt.read_magic(f)
                            read = (
                                fmt.read_array_header_1_0
                                if version == (1, 0)
                                else fmt.read_array_header_2_0
                            )
                            shapes[key] = read(f)[0]
        except (zipfile.BadZipFile, ValueError, OSError) as e:
            raise NasError(f"{p}: not a readable .npz file: {e}") from None
        self._check(p, "latents", shapes.get("latents"))
        if "text" in shapes:
            self._check(p, "text", shapes["text"])
        return _LatentEntry(p, "npz", None, "text" in shapes)

    def _check_npy(self, p: Path) -> _LatentEntry:
        text_path = p.with_name(_stem(p) + ".text.npy")
        try:
            lat = np.load(p, mmap_mode="r")
            self._check(p, "latents", lat.shape)
            if text_path.is_file():
                self._check(text_path, "text", np.load(text_path, mmap_mode="r").shape)
        except ValueError as e:
            raise NasError(f"{p}: not a readable .npy file: {e}") from None
        has = text_path.is_file()
        return _LatentEntry(p, "npy", text_path if has else None, has)

    def __getitem__(self, index: int) -> VideoItem:
        e = self.entries[index]
        caption: str | None = None
        text: np.ndarray | torch.Tensor | None = None
        if e.kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(e.path), framework="pt") as f:
                latents: np.ndarray | torch.Tensor = f.get_tensor("latents")
                if e.has_text:
                    text = f.get_tensor("text")
                caption = (f.metadata() or {}).get("caption")
        elif e.kind == "npz":
            with np.load(e.path, allow_pickle=False) as z:
                latents = z["latents"]
                if e.has_text:
                    text = z["text"]
                if "caption" in z.files:
                    caption = str(z["caption"])
        else:
            latents = np.load(e.path)
            if e.text_path is not None:
                text = np.load(e.text_path)
        if caption is None:
            caption = _caption_for(e.path)
        text_t = self.text.encode(caption) if text is None else torch.as_tensor(text)
        return {
            "video": torch.as_tensor(latents).float().contiguous(),
            "text": text_t.float().contiguous(),
            "caption": caption,
        }


def write_latents(
    path: str | Path,
    latents: torch.Tensor,
    text: torch.Tensor | None = None,
    *,
    caption: str | None = None,
) -> Path:
    """Write one :class:`LatentsFolder` item as ``.safetensors`` (latents ``(C, T, H, W)``,
    text ``(L, D)``, caption in the metadata)."""
    from safetensors.torch import save_file

    p = Path(path)
    if p.suffix != ".safetensors":
        p = p.with_name(p.name + ".safetensors")
    if latents.ndim != 4:
        raise NasError(f"latents must be (C, T, H, W), got shape {_shape_str(latents.shape)}")
    tensors = {"latents": latents.detach().float().cpu().contiguous()}
    if text is not None:
        if text.ndim != 2:
            raise NasError(f"text must be (L, D), got shape {_shape_str(text.shape)}")
        tensors["text"] = text.detach().float().cpu().contiguous()
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(p), metadata={"caption": caption} if caption is not None else None)
    return p


def open_dataset(
    data: str | Path,
    geometry: Geometry,
    *,
    difficulty: str = DEFAULT_DIFFICULTY,
    seed: int = 0,
    split: str = "train",
    background: float = DEFAULT_BACKGROUND,
    colours: str = DEFAULT_COLOURS,
) -> Dataset[VideoItem]:
    """``"procedural"`` -> :class:`ProceduralVideos` at ``difficulty``, ``background`` and
    ``colours``; a folder of latents -> :class:`LatentsFolder`; a folder of video files ->
    :class:`VideoFolder`."""
    if str(data) == "procedural":
        return ProceduralVideos.for_geometry(
            geometry,
            difficulty=difficulty,
            seed=seed,
            split=split,
            background=background,
            colours=colours,
        )
    root = Path(data)
    if not root.is_dir():
        raise NasError(
            f"data {str(data)!r}: not 'procedural' nor a folder (of video files or latents)"
        )
    names = [p.name for p in root.iterdir()]
    if any(n.endswith((".safetensors", ".npz", ".latents.npy")) for n in names):
        return LatentsFolder(root, geometry)
    if any(n.lower().endswith(VIDEO_EXTENSIONS) for n in names):
        return VideoFolder(root, geometry)
    raise NasError(
        f"{root}: no video files ({', '.join(VIDEO_EXTENSIONS)}) and no latents "
        "(*.safetensors, *.npz, *.latents.npy)"
    )

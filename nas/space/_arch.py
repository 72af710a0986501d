"""Arch: one point of a search space, with a stable id.

An arch stores the resolved choice of every slot (never only indices), so its file stays
readable when the space changes. ``arch_id`` is a SHA-256 of the canonical choices and the
space hash: the same on every process, machine and Python version.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nas.errors import SpaceError
from nas.fileio import atomic_write_text
from nas.space._ops import OPS
from nas.space._schema import OpChoice, SearchSpace, _kind, _one_of
from nas.space._yaml import load_yaml_file

__all__ = [
    "Arch",
    "arch_from_dict",
    "arch_from_indices",
    "arch_indices",
    "dim_sizes",
    "enumerate_arches",
    "load_arch",
    "mutate_arch",
    "reference_arch",
    "sample_arch",
]

NONE = OpChoice("none")


@dataclass(frozen=True)
class Arch:
    """A frozen mapping slot -> temporal op choice over every slot of a space."""

    space_name: str
    space_hash: str
    choices: tuple[tuple[str, OpChoice], ...]  # every slot, in the backbone's execution order
    decoder: str | None = None  # the decode choice (``sd_vae/chunk1``) when the space has some

    @property
    def arch_id(self) -> str:
        """12 hex characters of SHA-256 over the space hash, the canonical choices and the
        decode choice (absent from the hash when the space has none, so older ids stand)."""
        body: dict[str, Any] = {
            "space": self.space_hash,
            "choices": [[s, c.key] for s, c in self.choices],
        }
        if self.decoder is not None:
            body["decoder"] = self.decoder
        payload = json.dumps(body, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def unet_id(self) -> str:
        """The id of the arch's UNet alone (its choices without the decoder): arches that
        differ only in how they decode share it, and so share a quality."""
        if self.decoder is None:
            return self.arch_id
        return Arch(self.space_name, self.space_hash, self.choices).arch_id

    def choice(self, slot: str) -> OpChoice:
        for s, c in self.choices:
            if s == slot:
                return c
        raise KeyError(f"no slot {slot!r}")

    def as_dict(self) -> dict[str, OpChoice]:
        return dict(self.choices)

    def op_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in OPS}
        for _, c in self.choices:
            counts[c.op] += 1
        return counts

    def describe(self) -> str:
        """A compact one-liner: the non-``none`` slots and their ops."""
        parts = [f"{s}={c.key}" for s, c in self.choices if c.op != "none"]
        text = ", ".join(parts) or "all none"
        return text if self.decoder is None else f"{text}; decoder={self.decoder}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arch_id": self.arch_id,
            "space": {"name": self.space_name, "hash": self.space_hash},
            "choices": {s: c.to_dict() for s, c in self.choices},
        }
        if self.decoder is not None:
            out["decoder"] = self.decoder
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> Path:
        """Write YAML (or JSON for a ``.json`` path) atomically."""
        p = Path(path)
        return atomic_write_text(p, self.to_json() if p.suffix == ".json" else self.to_yaml())


def _make(space: SearchSpace, per_group: Sequence[OpChoice], decode: str | None = None) -> Arch:
    chosen: dict[str, OpChoice] = {}
    for g, c in zip(space.groups, per_group, strict=True):
        for s in g.slots:
            chosen[s] = c
    if decode is None and space.decode:
        decode = space.decode[0].key
    return Arch(
        space.name,
        space.hash,
        tuple((s.name, chosen.get(s.name, NONE)) for s in space.slots),
        decode,
    )


def dim_sizes(space: SearchSpace) -> list[int]:
    """The number of choices of each search dimension: the slot groups, then the decode choice
    when the space has a pipeline with decoders. Indices (:func:`arch_indices`) follow it."""
    sizes = [len(g.choices) for g in space.groups]
    return [*sizes, len(space.decode)] if space.decode else sizes


def arch_from_indices(space: SearchSpace, indices: Sequence[int]) -> Arch:
    """The arch taking choice ``indices[i]`` in dimension ``i`` (:func:`dim_sizes`)."""
    n = len(dim_sizes(space))
    if len(indices) != n:
        raise ValueError(f"expected {n} indices, got {len(indices)}")
    g = len(space.groups)
    per_group = [grp.choices[int(i)] for grp, i in zip(space.groups, indices[:g], strict=True)]
    decode = space.decode[int(indices[g])].key if space.decode else None
    return _make(space, per_group, decode)


def arch_indices(space: SearchSpace, arch: Arch) -> list[int]:
    """The inverse of :func:`arch_from_indices`."""
    d = arch.as_dict()
    idx = [g.choices.index(d[g.slots[0]]) for g in space.groups]
    if space.decode:
        keys = [c.key for c in space.decode]
        idx.append(keys.index(arch.decoder) if arch.decoder in keys else 0)
    return idx


def sample_arch(space: SearchSpace, rng: np.random.Generator) -> Arch:
    """A uniform sample: each dimension's choice drawn independently."""
    return arch_from_indices(space, [int(rng.integers(n)) for n in dim_sizes(space)])


def mutate_arch(
    space: SearchSpace, arch: Arch, rng: np.random.Generator, prob: float = 0.1
) -> Arch:
    """Resample each dimension with probability ``prob`` to a different choice; at least one
    changes."""
    idx = arch_indices(space, arch)
    sizes = dim_sizes(space)
    mutable = [i for i, n in enumerate(sizes) if n > 1]
    if not mutable:
        return arch
    picks = [i for i in mutable if rng.random() < prob] or [int(rng.choice(mutable))]
    for i in picks:
        n = sizes[i]
        idx[i] = (idx[i] + 1 + int(rng.integers(n - 1))) % n
    return arch_from_indices(space, idx)


def enumerate_arches(space: SearchSpace, limit: int = 1_000_000) -> Iterator[Arch]:
    """Every arch of a small space, in index order; refuses spaces larger than ``limit``."""
    if space.size > limit:
        raise ValueError(
            f"space {space.name!r} has {space.size:,} arches, more than limit={limit:,}"
        )
    for idx in itertools.product(*[range(n) for n in dim_sizes(space)]):
        yield arch_from_indices(space, idx)


def reference_arch(space: SearchSpace, op: str) -> tuple[Arch, int]:
    """The arch putting ``op`` wherever the space offers it: at its default options when
    offered, else the first listed ones.

    Elsewhere it takes ``none`` if offered, else the group's first choice. Returns the arch and
    the number of slots that got ``op``.
    """
    per_group = []
    hits = 0
    default = OpChoice.make(op)
    for g in space.groups:
        offered = [c for c in g.choices if c.op == op]
        pick = default if default in offered else next(iter(offered), None)
        if pick is not None:
            hits += len(g.slots)
        else:
            pick = next((c for c in g.choices if c.op == "none"), g.choices[0])
        per_group.append(pick)
    return _make(space, per_group), hits


def _parse_choice(raw: Any, where: str) -> OpChoice:
    if isinstance(raw, str):
        if raw not in OPS:
            raise SpaceError(where, f"{raw!r} is not one of {list(OPS)}")
        return OpChoice.make(raw)
    if not isinstance(raw, dict) or "op" not in raw:
        raise SpaceError(where, "expected an op name or a mapping with 'op' and its options")
    op = raw["op"]
    if not isinstance(op, str) or op not in OPS:
        raise SpaceError(f"{where}.op", f"{op!r} is not one of {list(OPS)}")
    spec = OPS[op]
    opts = {}
    for k, v in raw.items():  # check each value as the space file does: kernel 4, heads "2"
        if k == "op":
            continue
        if k not in spec.option_names:
            raise SpaceError(
                f"{where}.{k}", f"{op} has no option {k!r}; it has {list(spec.option_names)}"
            )
        opts[k] = _one_of(v, spec.option(k).allowed, f"{where}.{k}")
    return OpChoice.make(op, **opts)


def arch_from_dict(space: SearchSpace, raw: Any, source: str | None = None) -> Arch:
    """Validate an arch (as written by :meth:`Arch.to_dict`) against ``space``.

    The choices must be ones the space allows; an arch written under another version of the
    space is accepted when they still are (its id is then recomputed for this space).
    """
    try:
        if not isinstance(raw, Mapping):
            raise SpaceError("(top level)", f"expected a mapping with 'choices', got {_kind(raw)}")
        unknown = set(raw) - {"arch_id", "space", "choices", "decoder"}
        if unknown:
            key = sorted(map(str, unknown))[0]  # keys may be of mixed types: 1, "foo"
            raise SpaceError(key, "unknown key; allowed keys: arch_id, space, choices, decoder")
        decode = _parse_decoder(space, raw.get("decoder"))
        if "choices" not in raw:
            raise SpaceError("choices", "is required (a mapping slot -> op)")
        choices = raw["choices"]
        if not isinstance(choices, Mapping):
            raise SpaceError("choices", "expected a mapping slot -> op")
        slot_names = [s.name for s in space.slots]
        for s in choices:
            if s not in slot_names:
                raise SpaceError(f"choices.{s}", f"unknown slot; slots: {', '.join(slot_names)}")
        parsed = {s: _parse_choice(v, f"choices.{s}") for s, v in choices.items()}
        per_group: list[OpChoice] = []
        for g in space.groups:
            missing = [s for s in g.slots if s not in parsed]
            if missing:
                raise SpaceError(
                    f"choices.{missing[0]}", "is missing (the space searches this slot)"
                )
            first = parsed[g.slots[0]]
            for s in g.slots[1:]:
                if parsed[s] != first:
                    raise SpaceError(f"choices.{s}", f"differs from {g.slots[0]}; they are tied")
            if first not in g.choices:
                allowed = [c.key for c in g.choices]
                shown = ", ".join(allowed[:8]) + (", ..." if len(allowed) > 8 else "")
                raise SpaceError(
                    f"choices.{g.slots[0]}", f"{first.key} is not allowed here; allowed: {shown}"
                )
            per_group.append(first)
        for s in slot_names:
            if space.group_of(s) is None and s in parsed and parsed[s] != NONE:
                raise SpaceError(
                    f"choices.{s}", f"{parsed[s].key}: this slot is fixed to none in the space"
                )
    except SpaceError as e:
        other = written_for(raw)
        if other is not None and other[1] != space.hash:  # the likely cause, said first
            e = SpaceError(
                e.where,
                f"{e.message} (this arch was written for space {other[0]!r}, hash {other[1]}; "
                f"the space given is {space.name!r}, hash {space.hash}: pass its own space)",
            )
        raise (e.with_source(source) if source else e) from None
    return _make(space, per_group, decode)


def _parse_decoder(space: SearchSpace, raw: Any) -> str | None:
    """An arch file's ``decoder:`` against the space's decode choices."""
    keys = [c.key for c in space.decode]
    if raw is None:
        if len(keys) > 1:
            raise SpaceError(
                "decoder", f"is required (this space chooses one of: {', '.join(keys)})"
            )
        return keys[0] if keys else None
    if not keys:
        raise SpaceError("decoder", "this space has no pipeline decoders to choose from")
    if raw not in keys:
        raise SpaceError("decoder", f"{raw!r} is not one of [{', '.join(keys)}]")
    return str(raw)


def written_for(raw: Any) -> tuple[str, str] | None:
    """(name, hash) of the space an arch file says it was written for, if it says so."""
    named = raw.get("space") if isinstance(raw, Mapping) else None
    if not isinstance(named, Mapping):
        return None
    name, digest = named.get("name"), named.get("hash")
    if not isinstance(name, str) or not isinstance(digest, str):
        return None
    return name, digest


def other_space_note(space: SearchSpace, path: str | Path) -> str:
    """One line naming both spaces and hashes when the arch file at ``path`` was written for
    another space or another version of ``space`` (its choices may still fit); "" when not."""
    p = Path(path)
    other = written_for(load_yaml_file(p))
    if other is None or other[1] == space.hash:
        return ""
    return (
        f"{p} was written for space {other[0]!r} (hash {other[1]}), not {space.name!r} "
        f"(hash {space.hash})"
    )


def load_arch(space: SearchSpace, path: str | Path) -> Arch:
    """Read an arch YAML/JSON file (JSON is valid YAML) and validate it against ``space``."""
    p = Path(path)
    return arch_from_dict(space, load_yaml_file(p), str(p))

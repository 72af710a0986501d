"""The reference arches of a space: what every search tries first, and the dashboard marks."""

from __future__ import annotations

from dataclasses import replace

from nas.space import Arch, SearchSpace, reference_arch

__all__ = ["reference_arches"]


def reference_arches(space: SearchSpace) -> list[tuple[str, Arch]]:
    """The all-none arch, then for each op kind the arch that puts it everywhere the space
    allows (:func:`nas.space.reference_arch`), each once, labelled by the op kind (``none``,
    ``conv1d``, ...; ``none+<decoder>`` for the all-none UNet with another decode choice).
    Every search tries them first, so its front has these anchors (the all-none arch is the
    cheapest the space offers)."""
    kinds = ["none"]
    for g in space.groups:
        kinds += [c.op for c in g.choices if c.op not in kinds]
    out: list[tuple[str, Arch]] = []
    seen: set[str] = set()
    for op in kinds:
        arch, hits = reference_arch(space, op)
        if hits and arch.arch_id not in seen:
            seen.add(arch.arch_id)
            out.append((op, arch))
    if space.decode and out:  # the all-none UNet with every other way of decoding
        none = out[0][1]
        more = [(f"none+{c.key}", replace(none, decoder=c.key)) for c in space.decode[1:]]
        out[1:1] = more
    return out

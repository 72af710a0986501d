"""CostModel: an Arch's latency and peak memory on a device, from that device's table.

Latency per step = sum of the rows the arch runs through (backbone blocks + temporal ops), each
less the runtime's per-call time (the ``call`` row: every row was timed as its own call, the
UNet is one), + the ``glue`` row (what the UNet runs between blocks, with its one call) + any
fixed ``overhead_ms`` given or in meta.json (0 unless given). Where the table has a measured
``unet`` row (the backbone alone timed as one network), the backbone is anchored on it: every
arch's step moves by that row less the backbone's rows and glue, so the backbone counts as the
runtime executed it (issue 21: a piece whose backbone ran 179 ms under its rows' sum was
over-predicted by 2.5 % until anchored). A table made before the network
rows existed loads without them, and :attr:`CostModel.notes` says what is left out and the
``nas profile`` command that adds them. Per video, what a user
waits for: the text encoder once + steps x step + the decoder once per chunk of frames (the
text encoder and decoder when the space has a ``pipeline:``; without one, steps x step).
Peak memory = every weight the pipeline keeps resident (UNet, text encoder, the chosen
decoder) + the largest stage's activations (the UNet's largest live set: at every block the
skip connections held for the up path plus the block's own working set; the text encoder's;
or one decoder call's working set plus the latents and the frames decoded so far) + the
runtime's per-session memory (the measured ``call`` row's peak, which each block's measured
peak also held and is taken out of its working set) + the runtime's memory for a whole network
beyond its blocks (``network_mb``: the measured ``unet`` row, the backbone alone as one
network, less the model's figure for it) + any fixed ``overhead_mb`` given.
Lookups are precomputed per slot group and choice, so evaluation is array arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nas.cost._backbone import backbone_block_cost
from nas.cost._breakdown import BlockCell, CostBreakdown, CostParts, where_of
from nas.cost._rows import (
    RowSpec,
    backbone_row,
    call_row,
    decoder_row,
    glue_row,
    rows_for_space,
    temporal_row,
    text_encoder_row,
    unet_row,
)
from nas.cost._table import Table, TableRow
from nas.cost._temporal import temporal_op_cost
from nas.errors import NasError
from nas.space import Arch, Block, DecodeChoice, OpChoice, SearchSpace, arch_indices

__all__ = ["ArchEstimate", "CostModel", "MissingRowsError"]

MIB = float(2**20)


class MissingRowsError(NasError):
    """The table lacks rows the space needs; lists them and the command that fills them.

    ``folder`` is the table's folder (``Table.folder``), when known: if the table shipped for
    ``device`` has every missing row, the message says so (a stale local table shadows it).
    """

    def __init__(
        self,
        missing: Sequence[RowSpec],
        device: str,
        space: SearchSpace,
        folder: str | Path | None = None,
    ) -> None:
        from nas.cost._table import shipped_alternative

        self.missing = list(missing)
        self.folder = folder
        shown = ", ".join(r.key for r in self.missing[:5])
        more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
        where = space.source or "SPACE.yaml"
        alternative = shipped_alternative(device, folder, self.missing)
        table = f"the {device} table" + (f" in {folder}" if folder is not None else "")
        super().__init__(
            f"{table} lacks {len(self.missing)} row(s) this space needs: {shown}{more}; "
            f"fill them with: nas profile --device {device} --space {where}"
            + (f"; {alternative}" if alternative else "")
        )


@dataclass(frozen=True)
class ArchEstimate:
    """What the cost model says about one arch on one device."""

    latency_ms_step: float
    latency_s_video: float  # what the user waits for: text + steps x UNet + decode
    peak_mem_mb: float
    weights_mb: float
    per_slot_ms: dict[str, float]
    sources: tuple[str, ...]  # provenance of the table rows behind the model (measured, ...)
    latency_s_text: float = 0.0  # the text encoder, once per video
    latency_s_unet: float = 0.0  # steps x UNet step
    latency_s_decode: float = 0.0  # the decoder, every chunk of frames


@dataclass(frozen=True)
class _Network:
    """The whole-network terms: the per-call time taken out of each block row, the glue time
    (with the UNet's one call), the per-session memory, and notes on missing rows."""

    call_ms: float
    glue_ms: float
    session_mb: float
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Stage:
    """A pipeline stage's per-video latency, resident weights and activation working set."""

    ms: float
    weights_mb: float
    act_mb: float


def _quantile_col(quantile: str) -> str:
    if quantile not in ("p10", "p50", "p90"):
        raise NasError(f"quantile {quantile!r} is not one of ['p10', 'p50', 'p90']")
    return f"latency_ms_{quantile}"


@dataclass(frozen=True)
class _Walk:
    """One step of the backbone in execution order: its cells, its activation peak, and the
    skip connections live at each temporal slot."""

    wheres: tuple[str, ...]
    cells: tuple[BlockCell, ...]
    peak_mb: float
    skip_live_at_slot: dict[str, float]


class CostModel:
    """Latency and peak memory of arches of ``space`` on the device ``table`` describes.

    :meth:`evaluate` gives an arch's totals, :meth:`breakdown` its per-block cells (the one
    source of them: the dashboard draws these), :meth:`evaluate_indices` many arches at once.
    """

    def __init__(
        self,
        space: SearchSpace,
        table: Table,
        *,
        quantile: str = "p50",
        overhead_ms: float | None = None,
        overhead_mb: float | None = None,
    ) -> None:
        self.space = space
        self.table = table
        meta = table.info
        self.device = meta.device_name
        self.precision = meta.precision or space.geometry.precision
        self.memory_budget_mb = meta.memory_budget_mb
        self.quantile = quantile
        self._col = _quantile_col(quantile)
        needed = [r for r in rows_for_space(space, self.precision) if not r.is_network]
        missing = table.missing(needed)
        if missing:
            raise MissingRowsError(missing, self.device, space, folder=table.folder)
        self._geo = replace(space.geometry, precision=self.precision)
        self._sources: set[str] = set()
        net = self._network_terms()
        self.notes = net.notes
        self.call_ms, self.glue_ms, self.session_mb = net.call_ms, net.glue_ms, net.session_mb
        extra_ms = float(overhead_ms if overhead_ms is not None else meta.overhead_ms)
        extra_mb = float(overhead_mb if overhead_mb is not None else meta.overhead_mb)
        self.overhead_ms = net.glue_ms + extra_ms
        self.overhead_mb = net.session_mb + extra_mb
        walk = self._walk_backbone()
        self._skip_live = walk.skip_live_at_slot
        self._bb_ms = sum(c.ms for c in walk.cells)
        self._bb_weights_mb = sum(c.weights_mb for c in walk.cells)
        self._bb_peak_mb = walk.peak_mb
        self.network_mb, self.unet_residual_ms = self._unet_terms()
        self.overhead_mb += self.network_mb
        # the backbone as the runtime executes it: its whole-network measurement stands in for
        # the sum of its block rows and the glue (measured in the same stretch, not fitted)
        self.overhead_ms += self.unet_residual_ms or 0.0
        # per group and choice: its cells (one per slot), latency, weights, activation peak
        choice_cells: list[tuple[tuple[BlockCell, ...], ...]] = []
        self._g_act: list[np.ndarray] = []
        for g in space.groups:
            per_choice = [self._choice_cells(c, g.slots) for c in g.choices]
            choice_cells.append(tuple(cells for cells, _ in per_choice))
            self._g_act.append(np.asarray([act for _, act in per_choice]))
        self._g_ms = [np.asarray([sum(c.ms for c in cs) for cs in g]) for g in choice_cells]
        self._g_w = [np.asarray([sum(c.weights_mb for c in cs) for cs in g]) for g in choice_cells]
        self._text = self._text_stage()
        decode = [self._decode_stage(c) for c in space.decode] or [_Stage(0.0, 0.0, 0.0)]
        self._d_ms = np.asarray([d.ms for d in decode])
        self._d_w = np.asarray([d.weights_mb for d in decode])
        self._d_act = np.asarray([d.act_mb for d in decode])
        self.parts = CostParts(
            walk.wheres, walk.cells, tuple(choice_cells), self.overhead_ms, self.overhead_mb
        )
        self.sources = tuple(sorted(self._sources))

    # -- building the lookups ----------------------------------------------------------------

    def _row(self, spec: RowSpec) -> TableRow:
        r = self.table.rows[spec.key]
        self._sources.add(r.source)
        return r

    def _lat(self, r: TableRow) -> float:
        v = getattr(r, self._col)
        v = r.latency_ms_p50 if v is None else v
        assert v is not None  # __init__ rejected tables without these rows' latency
        return float(v)

    def _unet_terms(self) -> tuple[float, float | None]:
        """From the ``unet`` row (the backbone alone, measured as one network): the memory the
        runtime holds for a whole network beyond the sum of its blocks (its measured peak less
        the model's backbone weights, activations and session; >= 0), and the measured minus
        predicted latency of that network, added to every arch's step (the backbone anchored on
        its own measurement). (0, None) without the row."""
        r = self.table.rows.get(unet_row(self.space, self.precision).key)
        if r is None or not r.ok or r.source != "measured":
            if self.table.info.backend in ("onnxruntime", "torch"):
                self.notes = (
                    *self.notes,
                    f"the {self.device} table has no unet row: peak memory leaves out the "
                    "runtime's memory for a whole network beyond its blocks; add it with: nas "
                    f"profile --device {self.device} --space {self.space.source or 'SPACE.yaml'}",
                )
            return 0.0, None
        self._sources.add(r.source)
        residual = self._lat(r) - (self._bb_ms + self.glue_ms)
        if r.peak_mem_mb is None:
            return 0.0, residual
        model = self._bb_weights_mb + self._bb_peak_mb + self.session_mb
        return max(float(r.peak_mem_mb) - model, 0.0), residual

    def _block_lat(self, r: TableRow) -> float:
        """A block row's time inside the UNet: its own call's fixed cost taken out."""
        return max(self._lat(r) - self.call_ms, 0.0)

    def _network_terms(self) -> _Network:
        """The ``call`` and ``glue`` rows' terms; a missing one is 0 and a note says so."""
        table, space = self.table, self.space
        call = table.rows.get(call_row(self.precision).key)
        glue = table.rows.get(glue_row(space, self.precision).key)
        lacking = [k for k, r in (("glue", glue), ("call", call)) if r is None or not r.ok]
        notes: tuple[str, ...] = ()
        if lacking:
            where = f" in {table.folder}" if table.folder is not None else ""
            notes = (
                f"the {self.device} table{where} has no {' and no '.join(lacking)} row: the "
                "latency leaves out what the whole network runs outside its blocks (skip "
                "concatenations, frames folded into the batch, per-call costs); add "
                f"{'them' if len(lacking) > 1 else 'it'} with: nas profile --device {self.device} "
                f"--space {space.source or 'SPACE.yaml'} (measures only the missing rows)",
            )
        # an estimated call row has no per-call cost to take out: estimates charge ops, not calls
        measured_call = call is not None and call.ok and call.source == "measured"
        call_ms = self._lat(self._row(call.spec)) if call is not None and measured_call else 0.0
        session = call.peak_mem_mb if call is not None and measured_call else None
        glue_ms = self._lat(self._row(glue.spec)) if glue is not None and glue.ok else call_ms
        return _Network(call_ms, glue_ms, float(session or 0.0), notes)

    def _weights_mb(self, r: TableRow, params: int) -> float:
        w = r.weight_bytes if r.weight_bytes is not None else params * self._geo.bytes_per_element
        return float(w / MIB)

    def _work_mb(self, r: TableRow, analytic_in: int, analytic_peak: int, params: int) -> float:
        """A block's own activation working set: its measured peak minus its weights where the
        table has a peak, else the analytic input plus its largest tensor."""
        weights = self._weights_mb(r, params)
        if r.peak_mem_mb is not None and r.peak_mem_mb > weights:
            # the session's own memory is counted once, in overhead_mb
            return float(max(r.peak_mem_mb - weights - self.session_mb, 0.0))
        return (analytic_in + analytic_peak) / MIB

    def _in_bytes(self, blk: Block) -> int:
        geo = self._geo
        if blk.kind == "time_embed":
            return geo.effective_batch * blk.in_channels * geo.bytes_per_element
        # spatial blocks run with the frames folded into the batch
        return geo.spatial_batch * blk.in_channels * blk.height * blk.width * geo.bytes_per_element

    def _walk_backbone(self) -> _Walk:
        """Walk one step in execution order. The skips the up path needs are pushed after
        conv_in, after each down pair (its temporal slot ends the pair) and after each
        downsampler, and each up ResNet pops one (its concat input)."""
        space, geo = self.space, self._geo
        wheres: list[str] = []
        cells: list[BlockCell] = []
        points: list[float] = []
        skip_live: dict[str, float] = {}
        skips: list[float] = []
        held = 0.0
        for b in space.blocks:
            w = where_of(b.stage, b.level)
            if w not in wheres:
                wheres.append(w)
            if b.kind == "temporal":
                skip_live[b.name] = held
                if b.stage == "down":
                    skips.append(
                        geo.spatial_batch
                        * b.out_channels
                        * b.height
                        * b.width
                        * geo.bytes_per_element
                        / MIB
                    )
                    held += skips[-1]
                continue
            r = self._row(backbone_row(b, space, self.precision))
            c = backbone_block_cost(b, space.backbone.config, geo)
            cells.append(
                BlockCell(w, b.kind, False, self._block_lat(r), self._weights_mb(r, c.params))
            )
            if b.stage == "up" and b.kind == "resnet":
                held -= skips.pop()  # now part of this block's input
            points.append(held + self._work_mb(r, self._in_bytes(b), c.peak_bytes, c.params))
            if b.kind in ("conv_in", "downsample"):
                skips.append(c.out_bytes / MIB)
                held += skips[-1]
        return _Walk(tuple(wheres), tuple(cells), max(points), skip_live)

    def _choice_cells(
        self, choice: OpChoice, slots: Sequence[str]
    ) -> tuple[tuple[BlockCell, ...], float]:
        """A choice's cells (one per slot of its group) and its activation peak at them."""
        if choice.op == "none":
            return (), 0.0
        cells: list[BlockCell] = []
        act = 0.0
        for sname in slots:
            slot = self.space.slot(sname)
            r = self._row(temporal_row(choice, slot, self.space, self.precision))
            c = temporal_op_cost(choice, slot, self._geo)
            w = where_of(slot.stage, slot.level)
            cells.append(
                BlockCell(w, choice.op, True, self._block_lat(r), self._weights_mb(r, c.params))
            )
            work = self._work_mb(r, c.out_bytes, c.peak_bytes, c.params)
            act = max(act, self._skip_live[sname] + work)
        return tuple(cells), act

    def _text_stage(self) -> _Stage:
        """The text encoder's row: once per video (prompt and, with guidance, the empty one)."""
        spec = text_encoder_row(self.space, self.precision)
        if spec is None:
            return _Stage(0.0, 0.0, 0.0)
        r = self._row(spec)
        weights = self._pipeline_weights_mb(r)
        act = spec.batch * spec.height * spec.channels * 4 * self._geo.bytes_per_element
        return _Stage(self._lat(r), weights, self._pipeline_work_mb(r, weights, act))

    def _decode_stage(self, choice: DecodeChoice) -> _Stage:
        """A decode choice per video: its row once per chunk of latent frames; its working set
        is one call's, plus the video's latents and the frames decoded so far."""
        spec = decoder_row(choice, self.space, self.precision)
        r = self._row(spec)
        geo, scale = self._geo, spec.params["scale"]
        assert isinstance(scale, int)
        calls = -(-geo.frames // choice.chunk)
        weights = self._pipeline_weights_mb(r)
        latent = geo.latent_channels * geo.latent_height * geo.latent_width
        full_res = geo.latent_height * scale * geo.latent_width * scale
        video = geo.batch * geo.frames * (3 * full_res + latent) * geo.bytes_per_element
        # analytic fallback when the row has no peak: a full-resolution conv's input and output
        # at 128 channels (SD's VAE decoder's last level) for each frame of the call
        one_call = 2 * geo.batch * choice.chunk * 128 * full_res * geo.bytes_per_element
        work = self._pipeline_work_mb(r, weights, one_call)
        return _Stage(self._lat(r) * calls, weights, work + video / MIB)

    def _pipeline_weights_mb(self, r: TableRow) -> float:
        if r.weight_bytes is None:
            raise NasError(
                f"table row {r.spec.key} has no weight_bytes (a pipeline stage's weights are "
                f"not derived analytically): re-profile it with nas profile --device "
                f"{self.device} --space {self.space.source or 'SPACE.yaml'}"
            )
        return float(r.weight_bytes / MIB)

    def _pipeline_work_mb(self, r: TableRow, weights_mb: float, analytic_bytes: int) -> float:
        if r.peak_mem_mb is not None and r.peak_mem_mb > weights_mb:
            return float(r.peak_mem_mb - weights_mb)
        return analytic_bytes / MIB

    # -- evaluation --------------------------------------------------------------------------

    def evaluate_indices(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Arrays for ``(n, dims)`` choice indices (the slot groups, then the decode choice when
        the space has one: :func:`nas.space.dim_sizes`): latency per step (ms), per video and
        per stage (s), peak memory and weights (MB)."""
        idx = np.asarray(indices, dtype=np.int64)
        groups = len(self._g_ms)
        dims = groups + (1 if self.space.decode else 0)
        if idx.ndim != 2 or idx.shape[1] != dims:
            raise ValueError(f"expected (n, {dims}) indices, got {idx.shape}")
        n = idx.shape[0]
        ms = np.full(n, self._bb_ms + self.overhead_ms)
        weights = np.full(n, self._bb_weights_mb)
        act = np.full(n, self._bb_peak_mb)
        for j in range(groups):
            col = idx[:, j]
            ms += self._g_ms[j][col]
            weights += self._g_w[j][col]
            act = np.maximum(act, self._g_act[j][col])
        dec = idx[:, groups] if self.space.decode else np.zeros(n, dtype=np.int64)
        text_s = np.full(n, self._text.ms / 1e3)
        unet_s = ms * self.space.geometry.steps / 1e3
        decode_s = self._d_ms[dec] / 1e3
        weights = weights + self._text.weights_mb + self._d_w[dec]
        act = np.maximum(np.maximum(act, self._text.act_mb), self._d_act[dec])
        return {
            "latency_ms_step": ms,
            "latency_s_video": text_s + unet_s + decode_s,
            "latency_s_text": text_s,
            "latency_s_unet": unet_s,
            "latency_s_decode": decode_s,
            "peak_mem_mb": weights + act + self.overhead_mb,
            "weights_mb": weights,
        }

    def activation_terms(self) -> tuple[float, list[np.ndarray]]:
        """Peak memory's activation part, a maximum rather than a sum: ``(floor, terms)`` with
        one array per search dimension (the slot groups, then the decode choice), so that an
        arch's ``peak_mem_mb`` is ``weights_mb + max(floor, max_j terms[j][index_j]) +
        overhead_mb``. Exact searches over the space need it (``nas.results.additive_front``)."""
        floor = max(self._bb_peak_mb, self._text.act_mb)
        terms = [a.astype(float) for a in self._g_act]
        if self.space.decode:
            terms.append(self._d_act.astype(float))
        else:
            floor = max(floor, float(self._d_act[0]))
        return float(floor), terms

    def evaluate(self, arch: Arch) -> ArchEstimate:
        idx = arch_indices(self.space, arch)
        out = self.evaluate_indices(np.asarray([idx]))
        per_slot: dict[str, float] = {s.name: 0.0 for s in self.space.slots}
        for j, (g, i) in enumerate(zip(self.space.groups, idx, strict=False)):  # decode col last
            cells = self.parts.choices[j][i]  # one per slot of the group, none for "none"
            for sname, cell in zip(g.slots, cells, strict=False):
                per_slot[sname] = cell.ms
        return ArchEstimate(
            latency_ms_step=float(out["latency_ms_step"][0]),
            latency_s_video=float(out["latency_s_video"][0]),
            peak_mem_mb=float(out["peak_mem_mb"][0]),
            weights_mb=float(out["weights_mb"][0]),
            per_slot_ms=per_slot,
            sources=self.sources,
            latency_s_text=float(out["latency_s_text"][0]),
            latency_s_unet=float(out["latency_s_unet"][0]),
            latency_s_decode=float(out["latency_s_decode"][0]),
        )

    def breakdown(self, arch: Arch) -> CostBreakdown:
        """The arch's per-block cells (merged by level and kind) and totals, on this device."""
        idx = arch_indices(self.space, arch)
        e = self.evaluate_indices(np.asarray([idx]))
        weights = float(e["weights_mb"][0])
        peak = float(e["peak_mem_mb"][0])
        return CostBreakdown(
            arch_id=arch.arch_id,
            cells=self.parts.compose(idx[: len(self.space.groups)]),
            overhead_ms=self.overhead_ms,
            latency_ms_step=float(e["latency_ms_step"][0]),
            steps=self.space.geometry.steps,
            latency_s_video=float(e["latency_s_video"][0]),
            weights_mb=weights,
            activation_mb=peak - weights - self.overhead_mb,
            overhead_mb=self.overhead_mb,
            peak_mem_mb=peak,
            text_ms=float(e["latency_s_text"][0]) * 1e3,
            decode_ms=float(e["latency_s_decode"][0]) * 1e3,
            decoder=arch.decoder,
        )

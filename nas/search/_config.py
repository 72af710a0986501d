"""The search configuration: Hydra composes it at the edge, then it is typed and validated once.

``compose_config(overrides)`` reads ``experiments/conf/`` (shipped with nas; a folder of the
user's own files is layered over it), applies ``key=value`` overrides and returns a frozen
:class:`SearchConfig`; ``expand_sweep`` turns ``-m`` sweep overrides into one list per run.
Nothing inside the search sees a ``DictConfig``. Every mistake is one ``NasError`` line that
names the key and lists the valid keys or values.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.results import Constraint, Objective, RunSettings
from nas.search._registry import PRUNERS, SAMPLERS, check_sampler_options

__all__ = [
    "GROUPS",
    "OBJECTIVES",
    "PRUNERS",
    "SAMPLERS",
    "ConstraintsConfig",
    "DeviceConfig",
    "ProxyConfig",
    "SamplerConfig",
    "SearchConfig",
    "SearchSettings",
    "compose_config",
    "config_dir",
    "constraints_of",
    "expand_sweep",
    "objectives_of",
    "run_settings",
]

OBJECTIVES = ("latency", "memory", "quality")
GROUPS = ("device", "sampler", "proxy", "constraints", "experiment")


def config_dir() -> Path:
    """The shipped configuration folder (``experiments/conf`` in a checkout)."""
    from importlib import resources

    return Path(str(resources.files("nas") / "_data" / "conf"))


@dataclass(frozen=True)
class DeviceConfig:
    name: str  # a device of profilers/devices/ with a table
    table: str | None  # a folder holding <name>/table.csv; None: ./latency_tables, else shipped
    quantile: str  # "p50" | "p90"


@dataclass(frozen=True)
class SamplerConfig:
    name: str  # a key of SAMPLERS
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProxyConfig:
    name: str  # a proxy of nas.quality.PROXIES, or "none"
    pruner: str  # a key of PRUNERS
    threads: int  # torch threads per worker
    options: dict[str, Any] = field(default_factory=dict)
    # its seed-to-seed noise for the error bars: "auto" (shipped), "none", a number or a
    # nas validate proxy summary.json (nas.quality.proxy_noise)
    noise: Any = "auto"


LATENCY_SCOPES = ("video", "unet")


@dataclass(frozen=True)
class ConstraintsConfig:
    latency_s: float | None  # per video
    latency_ms_step: float | None
    memory_mb: float | str | None  # a number, "device" or None
    # what "per video" covers, for the budget and the latency objective: `video` = what the
    # user waits for (text encoder + steps x UNet + decoder), `unet` = the denoising steps only
    latency_scope: str = "video"


@dataclass(frozen=True)
class SearchSettings:
    trials: int
    seed: int
    timeout_s: float | None
    workers: int  # local proxy processes; 0: "auto" in the config (see local_workers)
    objectives: tuple[str, ...]
    latency: str  # "video" | "step"
    storage: str | None
    study: str | None
    runs_dir: str
    batch: int | None = None  # trials asked at once; None: NSGA-II's population, else 8
    references: bool = True  # try the all-none arch and one arch per op kind first

    def local_workers(self, batched: bool) -> int:
        """Processes on this machine: ``search.workers``, or for ``auto`` the usable cores
        when proxies run in a pool (batches: the trials do not depend on it) and one when
        each worker samples for itself (its trials would depend on the count)."""
        if self.workers:
            return self.workers
        if not batched:
            return 1
        from nas.search._outputs import usable_cores

        return usable_cores()


@dataclass(frozen=True)
class SearchConfig:
    """Everything a search run needs besides the space file."""

    name: str | None
    device: DeviceConfig
    sampler: SamplerConfig
    proxy: ProxyConfig
    constraints: ConstraintsConfig
    search: SearchSettings

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["search"]["objectives"] = list(self.search.objectives)
        d["sampler"] = {"name": self.sampler.name, **self.sampler.options}
        return d

    def identity(self, space_digest: str) -> str:
        """A hash of what decides the study's results: everything but the trial count, the
        worker count and the time limit (so a re-run with more trials extends a run)."""
        d = self.to_dict()
        for k in ("trials", "workers", "timeout_s", "runs_dir"):
            d["search"].pop(k)
        if d["constraints"]["latency_scope"] == "video":  # the default: older runs still resume
            d["constraints"].pop("latency_scope")
        d["proxy"].pop("noise")  # error bars only: the same results
        if self.proxy.name != "none":  # results on other data must not mix (issue 15)
            from nas.quality import resolved_data

            d["proxy"]["data"] = resolved_data(self.proxy.options)
        blob = json.dumps({"config": d, "space": space_digest}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> SearchConfig:
        return _typed(raw)


# objective -> (column in trials.csv, unit, cheap); the latency objective's column depends on
# search.latency
_OBJECTIVE_COLUMNS: dict[str, tuple[str, str, bool]] = {
    "latency_video": ("latency_s_video", "s", True),
    "latency_step": ("latency_ms_step", "ms", True),
    "memory": ("peak_mem_mb", "MB", True),
    "quality": ("quality", "proxy value", False),  # the unit: the proxy's (PROXY_UNITS)
}
# constraint (its config key) -> (the metric column it bounds, unit)
_CONSTRAINT_COLUMNS: dict[str, tuple[str, str]] = {
    "latency_s": ("latency_s_video", "s"),
    "latency_ms_step": ("latency_ms_step", "ms"),
    "memory_mb": ("peak_mem_mb", "MB"),
}


def _scoped(column: str, cfg: SearchConfig) -> str:
    """The per-video latency column under ``constraints.latency_scope``."""
    unet = column == "latency_s_video" and cfg.constraints.latency_scope == "unet"
    return "latency_s_unet" if unet else column


def objectives_of(cfg: SearchConfig) -> tuple[Objective, ...]:
    """The run's objectives as typed values, in the config's order (all minimised); quality's
    unit says what the proxy's value is ("proxy loss" for train, "-log(1+SynFlow)", ...)."""
    from nas.quality import PROXY_UNITS  # torch-free, like PROXIES

    out = []
    for name in cfg.search.objectives:
        key = f"latency_{cfg.search.latency}" if name == "latency" else name
        column, unit, cheap = _OBJECTIVE_COLUMNS[key]
        if name == "quality":
            unit = PROXY_UNITS.get(cfg.proxy.name, unit)
        out.append(Objective(name, _scoped(column, cfg), unit, "minimize", cheap))
    return tuple(out)


def constraints_of(cfg: SearchConfig, device_memory_mb: float | None) -> tuple[Constraint, ...]:
    """The active budgets; ``constraints.memory_mb: device`` takes ``device_memory_mb`` (the
    device's budget from its table; None or infinite: no memory budget)."""
    c = cfg.constraints
    mem: float | None
    if c.memory_mb == "device":
        ok = device_memory_mb is not None and math.isfinite(device_memory_mb)
        mem = device_memory_mb if ok else None
    else:
        mem = None if c.memory_mb is None else float(c.memory_mb)
    budgets = {"latency_s": c.latency_s, "latency_ms_step": c.latency_ms_step, "memory_mb": mem}
    out = []
    for name, budget in budgets.items():
        if budget is not None:
            column, unit = _CONSTRAINT_COLUMNS[name]
            out.append(Constraint(name, _scoped(column, cfg), float(budget), unit))
    return tuple(out)


def run_settings(cfg: SearchConfig, constraints: tuple[Constraint, ...]) -> RunSettings:
    """What run.json records of the config for the run's readers."""
    return RunSettings(
        device=cfg.device.name,
        table=cfg.device.table,
        quantile=cfg.device.quantile,
        sampler=cfg.sampler.name,
        sampler_options=dict(cfg.sampler.options),
        proxy=cfg.proxy.name,
        latency=cfg.search.latency,
        seed=cfg.search.seed,
        objectives=objectives_of(cfg),
        constraints=constraints,
    )


# ---------------------------------------------------------------------------------------------
# typing and validation
# ---------------------------------------------------------------------------------------------


def _keys(raw: dict[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise NasError(
            f"config: unknown key {where}.{unknown[0]}; valid keys under {where}: "
            f"{', '.join(sorted(allowed))}"
        )


def _num(v: Any, where: str, *, allow_none: bool = True, positive: bool = True) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise NasError(f"config: {where}={v!r} is not a number")
    if positive and float(v) <= 0:
        raise NasError(f"config: {where}={v!r} must be > 0")
    return float(v)


def _int(v: Any, where: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise NasError(f"config: {where}={v!r} must be an integer >= {minimum}")
    return int(v)


def _noise_setting(v: Any) -> Any:
    """``proxy.noise``: auto, none, a number >= 0 or an existing summary.json (checked here,
    before a search runs, not when its outputs are written)."""
    if v is None or v in ("auto", "none"):
        return "none" if v is None else v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        x = _num(v, "proxy.noise", allow_none=False, positive=False)
        if x is None or x < 0:
            raise NasError(f"config: proxy.noise={v!r} must be >= 0")
        return x
    from pathlib import Path

    if isinstance(v, str) and Path(v).is_file():
        return v
    raise NasError(
        f"config: proxy.noise={v!r}; valid: auto (the shipped measurement), none, a number "
        ">= 0, or the summary.json of a nas validate proxy run"
    )


def _typed(raw: dict[str, Any]) -> SearchConfig:
    from nas.quality import PROXIES  # the registry of names: importing it loads no torch

    _keys(raw, "config", {"name", *GROUPS, "search"} - {"experiment"})
    dev = raw["device"]
    _keys(dev, "device", {"name", "table", "quantile"})
    if dev["quantile"] not in ("p50", "p90"):
        raise NasError(f"config: device.quantile={dev['quantile']!r}; valid: p50, p90")
    device = DeviceConfig(str(dev["name"]), dev.get("table"), str(dev["quantile"]))

    smp = dict(raw["sampler"])
    name = smp.pop("name", None)
    sampler = SamplerConfig(str(name), check_sampler_options(str(name), smp))

    px = raw["proxy"]
    _keys(px, "proxy", {"name", "pruner", "threads", "options", "noise"})
    if px["name"] != "none" and px["name"] not in PROXIES:
        raise NasError(f"config: proxy.name={px['name']!r}; valid: {', '.join(PROXIES)}, none")
    if px["pruner"] not in PRUNERS:
        raise NasError(f"config: proxy.pruner={px['pruner']!r}; valid: {', '.join(PRUNERS)}")
    proxy = ProxyConfig(
        str(px["name"]),
        str(px["pruner"]),
        _int(px["threads"], "proxy.threads", 1),
        dict(px.get("options") or {}),
        _noise_setting(px.get("noise", "auto")),
    )

    con = raw["constraints"]
    _keys(con, "constraints", {"latency_s", "latency_ms_step", "memory_mb", "latency_scope"})
    mem = con["memory_mb"]
    if mem != "device":
        mem = _num(mem, "constraints.memory_mb")
    scope = con.get("latency_scope", "video")
    if scope not in LATENCY_SCOPES:
        raise NasError(
            f"config: constraints.latency_scope={scope!r}; valid: {', '.join(LATENCY_SCOPES)} "
            "(video: text encoder + steps x UNet + decoder; unet: the steps only)"
        )
    constraints = ConstraintsConfig(
        _num(con["latency_s"], "constraints.latency_s"),
        _num(con["latency_ms_step"], "constraints.latency_ms_step"),
        mem,
        str(scope),
    )

    settings = _search_settings(raw["search"], proxy)
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise NasError(f"config: name={name!r} must be a non-empty string")
    return SearchConfig(name, device, sampler, proxy, constraints, settings)


_SEARCH_KEYS = {
    "trials",
    "seed",
    "timeout_s",
    "workers",
    "batch",
    "references",
    "objectives",
    "latency",
    "storage",
    "study",
    "runs_dir",
}


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise NasError(f"config: {where}={v!r} must be true or false")
    return v


def _workers(v: Any) -> int:
    if v == "auto":
        return 0  # resolved where it is used: SearchSettings.local_workers
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise NasError(f"config: search.workers={v!r} must be an integer >= 1 or auto")
    return int(v)


def _search_settings(s: dict[str, Any], proxy: ProxyConfig) -> SearchSettings:
    _keys(s, "search", _SEARCH_KEYS)
    objectives = s["objectives"]
    if isinstance(objectives, str):
        objectives = [objectives]
    if not objectives or any(o not in OBJECTIVES for o in objectives):
        raise NasError(
            f"config: search.objectives={list(objectives)}; choose one or more of "
            f"{', '.join(OBJECTIVES)}"
        )
    if len(set(objectives)) != len(objectives):
        raise NasError(f"config: search.objectives={list(objectives)} repeats an objective")
    if "quality" in objectives and proxy.name == "none":
        from nas.quality import PROXIES

        raise NasError(
            "config: search.objectives has quality but proxy=none; pick a proxy "
            f"(proxy={'|'.join(PROXIES)}) or drop quality from search.objectives"
        )
    if s["latency"] not in ("video", "step"):
        raise NasError(f"config: search.latency={s['latency']!r}; valid: video, step")
    if proxy.pruner != "none" and proxy.name != "train":
        raise NasError(
            f"config: proxy.pruner={proxy.pruner} needs a proxy with intermediate values "
            f"(proxy=train), not proxy={proxy.name}"
        )
    batch = s.get("batch")
    return SearchSettings(
        trials=_int(s["trials"], "search.trials", 1),
        seed=_int(s["seed"], "search.seed", 0),
        timeout_s=_num(s["timeout_s"], "search.timeout_s"),
        workers=_workers(s["workers"]),
        objectives=tuple(objectives),
        latency=str(s["latency"]),
        storage=None if s["storage"] is None else str(s["storage"]),
        study=None if s["study"] is None else str(s["study"]),
        runs_dir=str(s["runs_dir"]),
        batch=None if batch is None else _int(batch, "search.batch", 1),
        references=_bool(s.get("references", True), "search.references"),
    )


# ---------------------------------------------------------------------------------------------
# Hydra at the edge
# ---------------------------------------------------------------------------------------------


def _group_options(dirs: Sequence[Path], group: str) -> list[str]:
    return sorted({p.stem for d in dirs for p in (d / group).glob("*.yaml")})


def _check_overrides(dirs: Sequence[Path], overrides: list[str]) -> None:
    """One-line errors for an unknown group option or a malformed override, before Hydra's
    multi-line ones."""
    for ov in overrides:
        if "=" not in ov:
            raise NasError(
                f"override {ov!r} is not key=value (e.g. search.trials=100, device=cpu-ort)"
            )
        key, value = ov.split("=", 1)
        key = key.lstrip("+~")
        if key == "hydra" or key.startswith("hydra."):
            raise NasError(
                f"override {ov!r}: nas search does not use Hydra's own settings (its run dir "
                "is search.runs_dir, and it never changes the working directory)"
            )
        if key in GROUPS:
            valid = _group_options(dirs, key)
            if "," in value and all(v in valid for v in value.split(",")):
                raise NasError(
                    f"override {ov!r} is a sweep: pass -m (--multirun) to run one search each"
                )
            if value not in valid and not (key == "experiment" and value == "null"):
                raise NasError(f"unknown {key} {value!r}; valid: {', '.join(valid)}")


def _config_dirs(conf_dir: str | Path | None) -> list[Path]:
    """Where configs are looked up, first match winning: the user's folder (only the files it
    overrides or adds), then the shipped one."""
    shipped = config_dir().resolve()
    if conf_dir is None:
        return [shipped]
    user = Path(conf_dir).resolve()
    if not user.is_dir():
        raise NasError(f"--config-dir {conf_dir}: not a folder")
    return [user] if user == shipped else [user, shipped]


@contextlib.contextmanager
def _hydra(dirs: Sequence[Path]) -> Iterator[list[str]]:
    """Hydra initialised on ``dirs`` (the first holding a config.yaml gives the primary
    config); yields the search-path override that puts ``dirs`` in that order before every
    other. Hydra reads its primary config from the main folder only, so that folder is a
    temporary one holding only that config.yaml; group files come from the search path."""
    import tempfile

    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    primary = next((d / "config.yaml" for d in dirs if (d / "config.yaml").is_file()), None)
    if primary is None:
        raise NasError(f"no config.yaml in {dirs[0]} or the shipped config folder")
    with tempfile.TemporaryDirectory(prefix="nas-conf-") as main:
        shutil.copyfile(primary, Path(main) / "config.yaml")
        quoted = (repr(f"file://{d}") for d in dirs)  # a path may hold spaces or commas
        path = "hydra.searchpath=[" + ",".join(quoted) + "]"
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=main, version_base="1.3"):
                yield [path]
        finally:
            GlobalHydra.instance().clear()


def compose_config(
    overrides: list[str] | tuple[str, ...] = (), conf_dir: str | Path | None = None
) -> tuple[SearchConfig, dict[str, Any]]:
    """Compose ``config.yaml`` with ``overrides`` (Hydra syntax, e.g. ``search.trials=300``,
    ``device=cpu-ort``, ``experiment=cost_only``); return the typed config and the plain
    resolved dict (what a run dir saves). ``conf_dir`` holds the user's own config files,
    layered over the shipped ones: a file there replaces the shipped file of the same name, a
    new one adds an option (``experiment/tight.yaml``), and its ``config.yaml``, if any, is the
    primary config."""
    from hydra import compose
    from omegaconf import OmegaConf

    dirs = _config_dirs(conf_dir)
    overrides = list(overrides)
    _check_overrides(dirs, overrides)
    with _hydra(dirs) as searchpath:
        try:
            cfg = compose("config", overrides=[*searchpath, *overrides])
        except Exception as e:  # Hydra's errors are multi-line; keep the first line and the fix
            raise _hydra_error(e, overrides, searchpath) from None
    raw = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(raw, dict)
    raw.pop("experiment", None)
    raw.pop("hydra", None)
    plain: dict[str, Any] = {str(k): v for k, v in raw.items()}
    return _typed(plain), plain


def _hydra_error(e: Exception, overrides: list[str], searchpath: list[str]) -> NasError:
    """One line for a Hydra error (inside :func:`_hydra`): an unknown key lists the valid
    keys under its parent."""
    from hydra import compose
    from omegaconf import OmegaConf

    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "Ambiguous value" in msg or "multirun" in msg.lower():
        return NasError(f"config: {msg.split('.')[0]}: pass -m (--multirun) to sweep")
    if not ("Could not override" in msg or "not in struct" in msg or "Key '" in msg):
        return NasError(f"config: {msg}")
    key = msg.split("'")[1] if "'" in msg else "?"
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    groups = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in GROUPS]
    base = OmegaConf.to_container(compose("config", overrides=[*searchpath, *groups]))
    node: Any = base
    for part in parent.split(".") if parent else []:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    valid = ", ".join(sorted(k for k in node if k != "hydra")) if isinstance(node, dict) else "?"
    return NasError(
        f"unknown config key {key!r}; valid keys under {parent or 'the top level'}: {valid}"
    )


def expand_sweep(overrides: Sequence[str]) -> list[list[str]]:
    """The override lists of a sweep (``-m``): every combination of the comma lists and
    Hydra sweep functions (``sampler=tpe,nsga2 search.seed=range(0,3)``), in order, the
    last override varying fastest; one list when nothing sweeps."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NasError(f"-m: {first}") from None
    axes: list[list[str]] = []
    for text, ov in zip(overrides, parsed, strict=True):
        if ov.is_sweep_override():
            key = text.split("=", 1)[0]
            axes.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            axes.append([text])
    return [list(combo) for combo in itertools.product(*axes)]

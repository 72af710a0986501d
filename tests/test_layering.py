"""Layering rules, read from the source (ast), never by importing it.

1. Packages talk through their public names: a module does not import another package's private
   module (a dotted component starting with ``_``, e.g. ``nas.cost._rows``, ``profilers._coreml``).
   A package is ``nas.<sub>`` for the modules under ``nas/<sub>/``, ``nas`` for the top-level
   ``nas/*.py`` modules, ``profilers`` for ``profilers/``, and every file of ``benchmarks/`` and
   ``tests/`` is a package of its own. Only ``nas`` and ``profilers`` modules are policed.
2. Data flows one way: ``nas.search`` never imports ``nas.report`` (the dashboard reads results).
3. No function in ``nas/`` or ``profilers/`` is longer than :data:`MAX_FUNCTION_LINES` lines.
4. ``nas.mil`` (read by ``nas export`` and the Core ML profiler) imports neither coremltools nor
   torch until a program is read.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("nas", "profilers", "benchmarks", "tests")
POLICED = ("nas", "profilers")  # whose private modules nobody else may import
MAX_FUNCTION_LINES = 100
_REPORT = re.compile(r"nas\.report($|[.:])")


def _files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    """The package a dotted module name belongs to (see the module docstring)."""
    parts = module.split(".")
    if parts[0] == "nas":
        return ".".join(parts[:2]) if len(parts) > 2 or _is_subpackage(parts) else "nas"
    if parts[0] == "profilers":
        return "profilers"
    return module


def _is_subpackage(parts: list[str]) -> bool:
    return len(parts) == 2 and (ROOT / parts[0] / parts[1]).is_dir()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(path: Path, tree: ast.Module) -> Iterator[tuple[ast.AST, list[str]]]:
    """Every import of ``tree`` with the dotted names it may load (``from a import b``: ``a``
    and ``a.b``), relative imports resolved; ``importlib.import_module("x")`` counts too."""
    here = _module_name(path).split(".")
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here if is_pkg else here[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node, [base, *(f"{base}.{a.name}" for a in node.names if a.name != "*")]
        elif isinstance(node, ast.Call) and _is_import_call(node.func) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node, [arg.value]


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _private_owner(module: str) -> str | None:
    """The package whose private module ``module`` is, or None if it is public."""
    parts = module.split(".")
    if parts[0] not in POLICED:
        return None
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return _package(".".join(parts[:i]))
    return None


def _line(path: Path, node: ast.AST, source: str) -> str:
    segment = ast.get_source_segment(source, node) or ""
    return f"{_rel(path)}:{getattr(node, 'lineno', 0)}: {' '.join(segment.split())}"


def private_import_offenders() -> list[str]:
    """``file:line: import`` for every import of another package's private module."""
    out: list[str] = []
    for path in _files(*SCANNED):
        source = path.read_text(encoding="utf-8")
        mine = _package(_module_name(path))
        for node, names in _imports(path, ast.parse(source, filename=str(path))):
            owners = {_private_owner(n) for n in names} - {None, mine}
            if owners:
                out.append(_line(path, node, source))
    return out


def test_packages_import_only_public_modules_of_other_packages() -> None:
    offenders = private_import_offenders()
    assert not offenders, "private modules of another package imported:\n" + "\n".join(offenders)


def test_search_never_imports_report() -> None:
    offenders: list[str] = []
    for path in _files("nas/search"):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        for node, names in _imports(path, tree):
            if not isinstance(node, ast.Call) and any(_REPORT.match(n) for n in names):
                offenders.append(_line(path, node, source))
        for node in ast.walk(tree):  # "nas.report" handed to importlib, a registry, ...
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and _REPORT.match(value):
                offenders.append(_line(path, node, source))
    assert not offenders, "nas.search imports nas.report:\n" + "\n".join(offenders)


def test_no_function_is_longer_than_the_limit() -> None:
    offenders: list[str] = []
    for path in _files(*POLICED):
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    offenders.append(f"{_rel(path)}:{node.lineno}: {node.name} ({n} lines)")
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_mil_inspection_imports_no_heavy_backend() -> None:
    code = (
        "import sys, nas.mil; "
        "print(sorted(m for m in ('coremltools', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_rules_see_what_they_police() -> None:
    """The checker itself: packages, private owners and relative imports resolve as documented."""
    assert _package("nas.cost._rows") == "nas.cost"
    assert _package("nas.cli") == "nas"
    assert _package("nas.space") == "nas.space"
    assert _package("profilers._ort") == "profilers"
    assert _package("tests.cost.test_counts") == "tests.cost.test_counts"
    assert _private_owner("nas.cost._rows") == "nas.cost"
    assert _private_owner("nas._resources") == "nas"
    assert _private_owner("profilers._coreml.roofline") == "profilers"
    assert _private_owner("nas.cost") is None
    assert _private_owner("torch._C") is None
    tree = ast.parse("from .._rows import RowSpec\nfrom . import _unet\n")
    fake = ROOT / "nas" / "cost" / "x" / "_y.py"
    names = [n for _, ns in _imports(fake, tree) for n in ns]
    assert "nas.cost._rows.RowSpec" in names and "nas.cost.x._unet" in names

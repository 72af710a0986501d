"""YAML reading that refuses duplicate keys and reports syntax errors in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nas.errors import SpaceError


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        mark = key_node.start_mark
        if isinstance(key, (dict, list)):  # e.g. `{{op: x}}`: a mapping used as a key
            raise SpaceError(
                "",
                f"a {'mapping' if isinstance(key, dict) else 'list'} cannot be a key, at line "
                f"{mark.line + 1}, column {mark.column + 1} (doubled braces?)",
            )
        if key in seen:
            raise SpaceError(
                "", f"duplicate key {key!r} at line {mark.line + 1}, column {mark.column + 1}"
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text; a syntax error becomes a one-line ``SpaceError`` naming the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except SpaceError as e:
        raise e.with_source(source) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise SpaceError("", f"invalid YAML at {where}: {e.problem}", source) from None
    except yaml.reader.ReaderError as e:  # a control character: its message spans two lines
        line = text.count("\n", 0, e.position) + 1
        code = e.character if isinstance(e.character, int) else ord(e.character)
        raise SpaceError(
            "",
            f"invalid YAML at line {line}: control character #x{code:04x} is not allowed",
            source,
        ) from None
    except yaml.YAMLError as e:
        raise SpaceError("", f"invalid YAML: {' '.join(str(e).split())}", source) from None
    except RecursionError:
        raise SpaceError("", "invalid YAML: nested too deeply", source) from None


def load_yaml_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError("", "file not found", str(path)) from None
    except IsADirectoryError:
        raise SpaceError("", "is a directory, expected a YAML file", str(path)) from None
    except UnicodeDecodeError:
        raise SpaceError("", "is not UTF-8 text", str(path)) from None
    return load_yaml_text(text, str(path))

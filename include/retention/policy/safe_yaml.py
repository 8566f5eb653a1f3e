"""A policy file read as safe, bounded YAML, before any key is looked at.

PyYAML's safe loader still lets a file cost gigabytes (an alias bomb), keep the last of two
equal keys without a word, merge mappings so that one value silently wins over another, and
read ``1:20`` as 80 or ``0x10`` as 16 (YAML 1.1). A retention policy decides when personal
data is destroyed, so each of those is refused here, naming the file, the key path and the line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from include.retention.errors import PolicyError, Problem
from include.retention.settings import MAX_POLICY_BYTES, MAX_POLICY_NODES

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.2's core schema, decimal only (its 0x and 0o forms are left out too): an optional
# sign, ASCII digits, and for a float a point and/or an exponent. YAML 1.1, which PyYAML
# follows, also reads 1:20 as 80 (base 60), 0x10 as 16, 010 as 8 and 1_000 as 1000.
_DECIMAL_INT = re.compile(r"[-+]?[0-9]+", re.ASCII)
_DECIMAL_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?", re.ASCII)
_MAX_NUMBER_DIGITS = 30  # int() refuses 4,300 digits with a message about Python, not the policy


class _PolicyLoader(yaml.SafeLoader):
    """Safe YAML whose plain numbers are YAML 1.2 decimal numbers; any other scalar that YAML
    1.1 took for a number is a string, refused where the policy reads a number."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _decimal_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode, pattern: re.Pattern[str], kind: str) -> str:
    """The scalar's text if it is a decimal number; an explicit ``!!int 0x10`` is refused too."""
    text = loader.construct_scalar(node)
    if not pattern.fullmatch(text) or len(text) > _MAX_NUMBER_DIGITS:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"{text!r} is not a plain decimal {kind} of at most {_MAX_NUMBER_DIGITS} characters "
            "(this file is read as YAML 1.2: no 0x, 0o, 1:20 or 1_000 forms)",
            node.start_mark,
        )
    return text


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int(_decimal_scalar(loader, node, _DECIMAL_INT, "integer"))


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = float(_decimal_scalar(loader, node, _DECIMAL_FLOAT, "number"))
    if math.isinf(value):  # 1e999: no key of a policy reads an infinite number
        raise yaml.constructor.ConstructorError(None, None, "a number too large to be a policy value", node.start_mark)
    return value


_PolicyLoader.add_implicit_resolver(_INT_TAG, re.compile(rf"{_DECIMAL_INT.pattern}\Z", re.ASCII), list("-+0123456789"))
_PolicyLoader.add_implicit_resolver(
    _FLOAT_TAG, re.compile(rf"{_DECIMAL_FLOAT.pattern}\Z", re.ASCII), list("-+.0123456789")
)
_PolicyLoader.add_constructor(_INT_TAG, _construct_int)
_PolicyLoader.add_constructor(_FLOAT_TAG, _construct_float)


def read_policy_yaml(path: Path) -> Any:
    """The YAML data of a policy file, read safely: a bounded size, no duplicate key at any
    level, no merge key, numbers as YAML 1.2 reads them, aliases allowed only while their
    expansion stays small. Raises ``PolicyError`` naming the file (and the key path and
    lines, for duplicate and merge keys; the line, for a malformed number)."""
    source = str(path)
    loader = _PolicyLoader(_read_text(path, source))
    try:
        return _checked_document(loader, source)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [Problem("", f"not valid YAML: {exc}")]) from None
    except _TooLarge as exc:
        raise PolicyError(source, [Problem("", str(exc))]) from None
    except RecursionError:
        raise PolicyError(source, [Problem("", "the YAML is nested too deeply to be a retention policy")]) from None
    finally:
        loader.dispose()


def _read_text(path: Path, source: str) -> str:
    """The file's text, refused before parsing when it is too large or not UTF-8."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, [Problem("", f"cannot read the file: {exc.strerror}")]) from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(
            source,
            [Problem("", f"the file is larger than {MAX_POLICY_BYTES} bytes; a retention policy is a few kilobytes")],
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            source, [Problem("", f"not UTF-8 text (byte {exc.start} cannot be decoded); save the file as UTF-8")]
        ) from None


def _checked_document(loader: _PolicyLoader, source: str) -> Any:
    """Compose the YAML into nodes, check their size and keys, and only then build the data."""
    node = loader.get_single_node()
    if node is None:
        return None
    _check_expansion(node, {}, set())
    key_problems = _key_problems(loader, node, "", set())
    if key_problems:
        raise PolicyError(source, key_problems)
    return loader.construct_document(node)


class _TooLarge(Exception):
    """The composed YAML would expand past ``MAX_POLICY_NODES``, or an alias refers to itself."""


def _check_expansion(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (each node is sized
    once, so this is linear in the file even when the expansion is exponential)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        mark = node.start_mark
        raise _TooLarge(f"an alias refers to itself (the node at line {mark.line + 1}): a policy is a tree")
    open_nodes.add(id(node))
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    size = 1 + sum(_check_expansion(child, sizes, open_nodes) for child in children)
    open_nodes.discard(id(node))
    if size > MAX_POLICY_NODES:
        raise _TooLarge(
            f"the YAML node at line {node.start_mark.line + 1} expands to more than "
            f"{MAX_POLICY_NODES} nodes once its aliases (*name) are expanded; a retention policy "
            "is a few hundred - refusing what looks like an alias bomb"
        )
    sizes[id(node)] = size
    return size


def _key_problems(loader: yaml.SafeLoader, node: yaml.Node, path: str, seen: set[int]) -> list[Problem]:
    """Every key given twice in one mapping, and every merge key (``<<``), at any depth.

    YAML loaders keep the last of two equal keys silently: a second ``active_period: P1D``
    would shorten a retention without a word. A merge key lets one value win over another
    just as silently (the later of two ``<<``, the first mapping of a ``<<`` list, an
    explicit key over a merged one), and a policy has no need of it: anchors and aliases
    (``*name``) still share whole values.
    """
    if id(node) in seen:
        return []  # an aliased node: checked where its anchor is
    seen.add(id(node))
    problems: list[Problem] = []
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _key_problems(loader, item, f"{path}[{index}]", seen)
    elif isinstance(node, yaml.MappingNode):
        problems += _mapping_key_problems(loader, node, path, seen)
    return problems


def _mapping_key_problems(loader: yaml.SafeLoader, node: yaml.MappingNode, path: str, seen: set[int]) -> list[Problem]:
    """The merge keys and repeated keys of one mapping, then those below each of its values."""
    problems: list[Problem] = []
    first_line: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            problems.append(
                Problem(
                    f"{path}.<<" if path else "<<",
                    f"merge keys (<<) are not allowed (line {key_node.start_mark.line + 1}): "
                    "YAML lets one merged value silently win over another; write each key "
                    "out, or share a whole value with an alias (*name)",
                )
            )
            continue
        key = (
            loader.construct_object(key_node, deep=True)
            if isinstance(key_node, yaml.ScalarNode)
            else key_node.start_mark.line
        )
        key_path = f"{path}.{key}" if path else str(key)
        line = key_node.start_mark.line + 1
        if key in first_line:
            problems.append(
                Problem(
                    key_path,
                    f"duplicate key: first at line {first_line[key]}, again at line {line}; give each key once",
                )
            )
        else:
            first_line[key] = line
        problems += _key_problems(loader, value_node, key_path, seen)
    return problems

"""YAML with positions: parse a file, keep its node tree, and point at any path inside it.

Plain PyYAML reads YAML 1.1, where `22:00` is the number 1320 and `no` is False; rule authors
write times of day and Chinese keywords, so only true/false, decimal numbers and null are
resolved implicitly here and everything else stays a string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {}
_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9_]*)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$",
        "-+.0123456789",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]
for _tag, _pattern, _first in _RESOLVERS:
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


@dataclass(frozen=True)
class Position:
    line: int
    column: int


class YamlProblem(Exception):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Document:
    """One parsed file: the plain data and the node tree it came from."""

    data: Any
    root: Node | None

    def position(self, loc: Sequence[str | int], *, key: bool = False) -> Position:
        """Where `loc` is written; with `key`, where its last key is (for an unknown key)."""
        node = self.root
        for index, step in enumerate(loc):
            nxt = _child(node, step, key=key and index == len(loc) - 1)
            if nxt is not None:
                node = nxt
        return _mark(node)

    def trail(self, loc: Sequence[str | int]) -> list[str | int]:
        """The steps of `loc` that are really written in the file.

        pydantic adds steps of its own (union members, validator names); they are skipped.
        """
        node, found = self.root, []
        for step in loc:
            nxt = _child(node, step, key=False)
            if nxt is not None:
                node = nxt
                found.append(step)
        return found


def _child(node: Node | None, step: str | int, *, key: bool) -> Node | None:
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == str(step):
                return key_node if key else value_node
    if isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        child: Node = node.value[step]
        return child
    return None


def _mark(node: Node | None) -> Position:
    if node is None:
        return Position(1, 1)
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def parse(text: str) -> Document:
    """Parse one YAML document; raise YamlProblem with the position of a syntax error."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _refuse_duplicate_keys(root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise YamlProblem(
            f"YAML syntax error: {problem}; check the indentation and quoting here", where
        ) from exc
    finally:
        loader.dispose()
    return Document(data, root)


def _refuse_duplicate_keys(node: Node) -> None:
    # PyYAML keeps the last of two equal keys silently; a rule author means one of them.
    if isinstance(node, MappingNode):
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                if key_node.value in seen:
                    first = _mark(seen[key_node.value])
                    raise YamlProblem(
                        f"duplicate key {key_node.value!r} (first written at line {first.line}); "
                        "keep one of them",
                        _mark(key_node),
                    )
                seen[key_node.value] = key_node
            _refuse_duplicate_keys(value_node)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item)

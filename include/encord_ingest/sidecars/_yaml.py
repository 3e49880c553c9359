"""A strict YAML reader: compose nodes with PyYAML, then build plain values ourselves.

PyYAML only composes the node graph (no Python object is ever constructed from a tag); this
module turns nodes into values, so:

- implicit types follow the YAML 1.2 core schema: ``true``/``false`` (not ``yes``/``no``/``on``),
  ``null``/``~``/empty, decimal, ``0o`` and ``0x`` integers (``012`` is 12, ``1:30`` is a
  string), floats incl. ``.inf``/``.nan`` (refused later as non-finite). Dates and times stay
  the strings they were written as; the typing layer parses them.
- explicit tags: only ``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``, ``!!map``,
  ``!!seq``. ``!!python/...`` tags are ``UNSAFE_YAML``; any other tag (``!!binary``,
  ``!!timestamp``, ``!Ref``) is ``INVALID_YAML``.
- keys must be strings (``1: x`` or ``true: x`` is ``INVALID_KEY``; quote them); a key written
  twice in one mapping is ``DUPLICATE_KEY``. Anchors, aliases and ``<<`` merge keys work; keys
  written in the mapping override merged ones, and among merged mappings the first wins.
- exactly one document per file.
"""

from __future__ import annotations

import re
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from encord_ingest.errors import ErrorCode

from ._values import ValueProblem

_YAML_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT = f"{_YAML_TAG}str", f"{_YAML_TAG}int", f"{_YAML_TAG}float"
_BOOL, _NULL, _MERGE = f"{_YAML_TAG}bool", f"{_YAML_TAG}null", f"{_YAML_TAG}merge"
_MAP, _SEQ = f"{_YAML_TAG}map", f"{_YAML_TAG}seq"
_PYTHON_TAG = f"{_YAML_TAG}python/"

_NULL_FORM = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE, _FALSE = ("true", "True", "TRUE"), ("false", "False", "FALSE")
_INT_FORM = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_FORM = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class _CoreResolver(BaseResolver):
    """Implicit tags of the YAML 1.2 core schema (plus ``<<`` merge keys)."""


_CoreResolver.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreResolver.add_implicit_resolver(_INT, _INT_FORM, list("-+0123456789"))
_CoreResolver.add_implicit_resolver(_FLOAT, _FLOAT_FORM, list("-+0123456789."))
_CoreResolver.add_implicit_resolver(_NULL, _NULL_FORM, ["~", "n", "N", ""])
_CoreResolver.add_implicit_resolver(_MERGE, re.compile(r"^<<$"), ["<"])

try:  # libyaml: fast, and it caps nesting at 1000 levels by itself
    from yaml.cyaml import CParser  # type: ignore[attr-defined]

    class _Composer(CParser, _CoreResolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _CoreResolver.__init__(self)

except ImportError:  # pragma: no cover - pure-Python fallback; deep nesting -> RecursionError
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Composer(Reader, Scanner, Parser, Composer, _CoreResolver):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _CoreResolver.__init__(self)


def compose(text: str) -> Node | None:
    """The node graph of a single-document stream (``None`` when empty); raises ``yaml.YAMLError``."""
    composer = _Composer(text)
    try:
        return composer.get_single_node()
    finally:
        composer.dispose()


def _show_tag(tag: str) -> str:
    return f"!!{tag[len(_YAML_TAG) :]}" if tag.startswith(_YAML_TAG) else tag


def _line(node: Node) -> str:
    return f"line {node.start_mark.line + 1}"


class NodeBuilder:
    """Turn composed nodes into plain values (aliases are built once and shared)."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self._built: dict[int, Any] = {}

    def build(self, node: Node, depth: int = 1) -> Any:
        """The value of ``node``; raises :class:`ValueProblem`."""
        if node.tag.startswith(_PYTHON_TAG):
            raise ValueProblem(
                ErrorCode.UNSAFE_YAML,
                expected="plain YAML data",
                value=_show_tag(node.tag),
                detail=f"{_line(node)}: tags that build Python objects are refused",
            )
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self._built:
            return self._built[id(node)]
        if depth > self.max_depth:
            raise ValueProblem(
                ErrorCode.NESTED_TOO_DEEP, expected=f"at most {self.max_depth} nested mappings or lists"
            )
        if isinstance(node, SequenceNode) and node.tag == _SEQ:
            return self._sequence(node, depth)
        if isinstance(node, MappingNode) and node.tag == _MAP:
            return self._mapping(node, depth)
        raise self._unsupported_tag(node)

    def _unsupported_tag(self, node: Node) -> ValueProblem:
        return ValueProblem(
            ErrorCode.INVALID_YAML,
            expected="no tags other than !!str, !!int, !!float, !!bool, !!null, !!map, !!seq",
            value=_show_tag(node.tag),
            detail=_line(node),
        )

    def _scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag == _STR:
            return text
        if tag == _NULL and _NULL_FORM.match(text):
            return None
        if tag == _BOOL and text in _TRUE + _FALSE:
            return text in _TRUE
        if tag == _INT and _INT_FORM.match(text):
            return self._int(text, node)
        if tag == _FLOAT and (_FLOAT_FORM.match(text) or _INT_FORM.match(text)):
            return self._float(text)
        if tag in (_NULL, _BOOL, _INT, _FLOAT):
            raise ValueProblem(
                ErrorCode.INVALID_YAML, expected=f"a valid {_show_tag(tag)}", value=text, detail=_line(node)
            )
        raise self._unsupported_tag(node)

    @staticmethod
    def _int(text: str, node: ScalarNode) -> int:
        try:
            if text.startswith(("0o", "0x")):
                return int(text[2:], 8 if text[1] == "o" else 16)
            return int(text, 10)
        except ValueError as exc:  # more digits than Python converts
            raise ValueProblem(
                ErrorCode.INVALID_YAML, expected="an integer", value=text, detail=f"{_line(node)}: {exc}"
            ) from None

    @staticmethod
    def _float(text: str) -> float:
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        if lowered == ".nan":
            return float("nan")
        return float(text)

    def _sequence(self, node: SequenceNode, depth: int) -> list[Any]:
        out: list[Any] = []
        self._built[id(node)] = out
        for index, child in enumerate(node.value):
            try:
                out.append(self.build(child, depth + 1))
            except ValueProblem as problem:
                raise problem.at(index) from None
        return out

    def _mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self._built[id(node)] = out
        merged: dict[str, Any] = {}
        written: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self._merge_sources(value_node, depth):
                    for key, value in source.items():
                        merged.setdefault(key, value)
                continue
            key = self._key(key_node)
            if key in written:
                raise ValueProblem(
                    ErrorCode.DUPLICATE_KEY,
                    expected="each key once per mapping",
                    detail=_line(key_node),
                    path=[key],
                )
            try:
                written[key] = self.build(value_node, depth + 1)
            except ValueProblem as problem:
                raise problem.at(key) from None
        out.update(merged)
        out.update(written)
        return out

    def _key(self, node: Node) -> str:
        if node.tag.startswith(_PYTHON_TAG):
            self.build(node)  # raises UNSAFE_YAML
        if isinstance(node, ScalarNode) and node.tag == _STR:
            return str(node.value)
        shown = (
            node.value
            if isinstance(node, ScalarNode)
            else f"a {type(node).__name__.removesuffix('Node').lower()} key"
        )
        raise ValueProblem(
            ErrorCode.INVALID_KEY,
            expected="a string key (quote it)",
            value=shown,
            detail=_line(node),
            path=[str(shown)],
        )

    def _merge_sources(self, node: Node, depth: int) -> list[dict[str, Any]]:
        nodes = node.value if isinstance(node, SequenceNode) and node.tag == _SEQ else [node]
        sources = [self.build(item, depth) for item in nodes]
        if not all(isinstance(source, dict) for source in sources):
            raise ValueProblem(
                ErrorCode.INVALID_YAML,
                expected="a mapping or a list of mappings after <<",
                detail=_line(node),
                path=["<<"],
            )
        return sources


def load_yaml(text: str, *, max_depth: int) -> Any:
    """Compose and build one document; raises ``yaml.YAMLError`` or :class:`ValueProblem`."""
    node = compose(text)
    if node is None:
        return {}
    return NodeBuilder(max_depth).build(node)

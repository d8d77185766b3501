"""YAML read with limits: size, nesting depth, alias expansion, number length.

PyYAML's safe loader refuses code, not cost: 520 bytes of nested aliases expand to 387 million
nodes, 500 nested brackets overflow Python's stack, a 1 MiB chain of `1:00:00:...` is a base-60
integer computed in quadratic time. Every config (and s.yaml) is read through `load_yaml`, which
stops each of these while composing, before anything is built, with a message naming the line.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from shared.errors import VpcprobeError, clip, excerpt

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
# Nodes counted with every alias expanded. A 1000-target config is ~20,000; a megabyte of plain YAML
# without aliases can hold ~500,000 one-character items, so this bites on alias bombs, not on size.
MAX_NODES = 200_000
MAX_INT_BITS = 64
MAX_NUMBER_CHARS = 100  # a longer number literal is a mistake, and YAML 1.1's base-60 ints are quadratic


class YamlError(VpcprobeError):
    """A document that is not readable YAML or is over a limit; the message says where and which."""


class _OverLimit(ComposerError):
    """A document over one of the limits: valid YAML, too costly to build."""


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting depth and alias-expanded nodes while composing."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it holds, aliases expanded; set once it is complete

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:  # an undefined alias is the composer's own error
                size = self._sizes.get(id(node))
                if size is None:
                    problem = f"alias *{clip(event.anchor, 60)} refers to a node that contains it"
                    raise _OverLimit(None, None, problem, event.start_mark)
                self._count(size, event.start_mark)
            return super().compose_node(parent, index)
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _OverLimit(None, None, f"the document nests deeper than {MAX_DEPTH} levels", mark)
        before = self._nodes
        self._count(1, mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._nodes - before
        return node

    def _count(self, nodes: int, mark: Any) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            raise _OverLimit(
                None,
                None,
                f"aliases expand the document past {MAX_NODES} nodes; write the values out instead of "
                "nesting aliases",
                mark,
            )

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # a date such as 2026-13-01
            what = excerpt(node.value) if isinstance(node.value, str) else "this value"
            raise ConstructorError(None, None, f"cannot read {what}: {clip(str(exc))}", node.start_mark) from None

    def construct_yaml_int(self, node: Any) -> int:
        if len(node.value) > MAX_NUMBER_CHARS:
            raise ConstructorError(
                None, None, f"a number of {len(node.value)} characters; quote it if it is text", node.start_mark
            )
        value = super().construct_yaml_int(node)
        if value.bit_length() > MAX_INT_BITS:
            raise ConstructorError(None, None, f"{excerpt(node.value)} is too large a number", node.start_mark)
        return value


_LimitedLoader.add_constructor("tag:yaml.org,2002:int", _LimitedLoader.construct_yaml_int)


def load_yaml(raw: bytes) -> Any:
    """Parse one YAML document from bytes (UTF-8, at most MAX_BYTES); raises YamlError naming the place."""
    if len(raw) > MAX_BYTES:
        raise YamlError(f"is over {MAX_BYTES // 1024} KiB; a config is at most 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlError(
            f"is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}); save it as UTF-8"
        ) from None
    try:
        loader = _LimitedLoader(text)  # checks the characters first
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {clip(str(exc))}") from None
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        kind = "" if isinstance(exc, _OverLimit) else "invalid YAML: "
        raise YamlError(f"{where}{kind}{clip(exc.problem or exc.context or '')}") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str) -> Any:
    """`load_yaml` of a file, reading at most one byte past the limit (a path to /dev/zero ends too)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlError(f"cannot read: {exc.strerror or exc}") from None
    return load_yaml(raw)

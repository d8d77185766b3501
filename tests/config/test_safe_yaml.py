"""YAML with limits (config/safe_yaml.py): each kind of hostile document is a YamlError naming the place,
stopped while composing; ordinary documents, anchors and merge keys still load."""

from __future__ import annotations

import pytest

from shared.config.safe_yaml import MAX_BYTES, MAX_DEPTH, MAX_NODES, YamlError, load_yaml, read_yaml_file


def alias_bomb(levels: int, width: int = 9) -> str:
    """The billion-laughs document: level i is `width` aliases of level i-1."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def error(raw: bytes) -> str:
    with pytest.raises(YamlError) as info:
        load_yaml(raw)
    return str(info.value)


def test_plain_documents_anchors_and_merge_keys_load():
    doc = load_yaml(b"base: &b {timeout: 5s}\nt: {<<: *b, retries: 1}\nlist: [1, *b]\n")
    assert doc == {"base": {"timeout": "5s"}, "t": {"timeout": "5s", "retries": 1}, "list": [1, {"timeout": "5s"}]}


def test_the_alias_bomb_of_the_issue_stops_while_composing():
    bomb = alias_bomb(9).encode()  # 9 anchors x 9 aliases: 387 million nodes when built
    assert 300 < len(bomb) < 600
    message = error(bomb)
    assert f"aliases expand the document past {MAX_NODES} nodes" in message
    assert message.startswith("line 6, column ")  # at the third alias of level 4 (66,430 nodes each)
    assert len(message) < 200


def test_an_alias_bomb_under_the_limit_loads_as_shared_objects():
    doc = load_yaml(alias_bomb(5).encode())  # 9**5 = 59,049 nodes expanded, under the limit
    assert len(doc["a4"]) == 9 and doc["a4"][0] is doc["a4"][1]


def test_nesting_is_limited_in_block_and_flow_style():
    assert "nests deeper than 64 levels" in error(b"x: " + b"[" * 500 + b"]" * 500)
    assert "nests deeper than 64 levels" in error(b"x: " + b"{a: " * 500 + b"1" + b"}" * 500)
    block = "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 1)) + "  " * (MAX_DEPTH + 1) + "v\n"
    assert "nests deeper" in error(block.encode())
    ok = "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH - 2)) + "  " * (MAX_DEPTH - 2) + "v\n"
    assert load_yaml(ok.encode())["k0"]["k1"] is not None


def test_a_recursive_alias_is_refused():
    assert "refers to a node that contains it" in error(b"a: &a [1, *a]\n")


def test_non_utf8_names_byte_and_offset():
    message = error(b"region: ap-southeast-1\n# caf\xe9\n")
    assert message == "is not UTF-8 text: byte 0xe9 at offset 28 (line 2); save it as UTF-8"


def test_size_limit():
    assert "is over 1024 KiB" in error(b"#" * (MAX_BYTES + 1))
    assert load_yaml(b"a: 1\n" + b"#" * (MAX_BYTES - 10)) == {"a": 1}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a: 2026-13-01", "line 1, column 4: invalid YAML: cannot read '2026-13-01': month must be in 1..12"),
        ("a: " + "9" * 5000, "line 1, column 4: invalid YAML: a number of 5000 characters; quote it if it is text"),
        ("a: 0x" + "f" * 40, "is too large a number"),
        ("a: " + ":".join(["1"] + ["00"] * 40), "a number of 121 characters"),  # YAML 1.1 base 60: quadratic
        ("a: *nothing", "found undefined alias 'nothing'"),
        ("a: !!python/object:os.system x", "could not determine a constructor"),
        ("a: [1, 2", "invalid YAML"),
        ("a: \x00", "invalid YAML: unacceptable character #x0000"),
    ],
)
def test_values_yaml_cannot_build_are_errors_with_a_place(text, expected):
    message = error(text.encode())
    assert expected in message and len(message) < 300


def test_a_long_anchor_name_is_clipped_in_the_message():
    message = error(b"a: *" + b"n" * 100_000)
    assert "found undefined alias" in message and len(message) < 300


def test_read_yaml_file_stops_reading_past_the_limit(tmp_path):
    with pytest.raises(YamlError, match="is over 1024 KiB"):
        read_yaml_file("/dev/zero")  # endless: read whole, this would never return
    with pytest.raises(YamlError, match="cannot read: No such file or directory"):
        read_yaml_file(str(tmp_path / "missing.yaml"))
    with pytest.raises(YamlError, match="cannot read: Is a directory"):
        read_yaml_file(str(tmp_path))

"""The Reader: problems are recorded with file and field path, and reading goes on."""

import pytest

from shared.config.reader import ConfigError, Reader


def read(data, path: str = "sec") -> tuple[Reader, list[str]]:
    problems: list[str] = []
    return Reader(data, path, problems, "cfg.yaml"), problems


@pytest.mark.parametrize(
    "value,seconds", [(5, 5.0), ("5s", 5.0), ("500ms", 0.5), ("2m", 120.0), ("1.5h", 5400.0), (" 3 s ", 3.0)]
)
def test_durations(value, seconds):
    r, problems = read({"timeout": value})
    assert r.seconds("timeout", None) == seconds and problems == []


@pytest.mark.parametrize("value", ["fast", 0, "-1s", True, "5d"])
def test_bad_durations_keep_the_default(value):
    r, problems = read({"timeout": value})
    assert r.seconds("timeout", 1.0) == 1.0
    assert problems == [f"cfg.yaml: sec.timeout: must be a positive duration such as 500ms, 5s or 2m (got {value!r})"]


def test_every_problem_is_recorded_with_its_path():
    r, problems = read({"n": -1, "flag": "yes", "name": ["x"], "mode": "ping", "timout": 1})
    assert (r.int("n", 3), r.bool("flag", False), r.str("name"), r.choice("mode", ("a", "b"), "a")) == (
        3,
        False,
        None,
        "a",
    )
    r.str("missing", required=True)
    r.seconds("timeout", None)
    r.finish()
    assert problems == [
        "cfg.yaml: sec.n: must be a whole number >= 0 (got -1)",
        "cfg.yaml: sec.flag: must be true or false (got 'yes')",
        "cfg.yaml: sec.name: must be a string, got list",
        "cfg.yaml: sec.mode: must be one of a, b (got 'ping')",
        "cfg.yaml: sec.missing: is required",
        "cfg.yaml: sec.timout: unknown field; did you mean 'timeout'?",
    ]


def test_not_a_mapping_and_the_top_level():
    _r, problems = read([1, 2], path="")
    assert problems == ["cfg.yaml: (top level): must be a mapping, got list"]
    r, problems = read({"zzz": 1}, path="")
    r.get("alpha")
    r.finish()
    assert problems == ["cfg.yaml: zzz: unknown field; known fields: alpha"]


def test_config_error_carries_every_problem():
    error = ConfigError(["a: x: bad", "a: y: worse"])
    assert error.problems == ["a: x: bad", "a: y: worse"] and str(error) == "a: x: bad\na: y: worse"

"""The Reader's limits on both sides: at a limit is fine and one past it is not (MAX_PROBLEMS problems, a
60-character key, a 240-character field path, an int's maximum, MAX_SECONDS)."""

from __future__ import annotations

from shared.config.reader import MAX_PROBLEMS, MAX_SECONDS, ConfigError, Reader


def read(data, path: str = "sec") -> tuple[Reader, list[str]]:
    problems: list[str] = []
    return Reader(data, path, problems, "cfg.yaml"), problems


def test_exactly_max_problems_are_all_listed():
    problems = [f"p{i}" for i in range(MAX_PROBLEMS)]
    assert ConfigError(problems).problems == problems
    more = ConfigError([*problems, "last"]).problems
    assert more == [*problems, "... and 1 more problems"]


def test_a_key_of_60_characters_is_shown_whole_and_61_cut():
    r, problems = read({})
    r.error("bad", "k" * 60)
    r.error("bad", "k" * 61)
    assert problems == [f"cfg.yaml: sec.{'k' * 60}: bad", f"cfg.yaml: sec.{'k' * 60}…: bad"]


def test_a_field_path_of_240_characters_is_shown_whole_and_longer_keeps_both_ends():
    whole = "a" * 240
    r, problems = read({}, path=whole)
    r.error("bad")
    longer = "b" * 120 + "c" * 80 + "d" * 80  # 280 characters
    r2, problems2 = read({}, path=longer)
    r2.error("bad")
    assert problems == [f"cfg.yaml: {whole}: bad"]
    assert problems2 == [f"cfg.yaml: {'b' * 120}…{'d' * 80}: bad"]


def test_an_int_at_its_maximum_is_fine_and_above_it_not():
    r, problems = read({"n": 10, "m": 11})
    assert (r.int("n", 1, maximum=10), r.int("m", 1, maximum=10)) == (10, 1)
    assert problems == ["cfg.yaml: sec.m: must be at most 10 (got 11)"]


def test_a_duration_of_exactly_max_seconds_is_fine_and_one_more_not():
    r, problems = read({"a": MAX_SECONDS, "b": MAX_SECONDS + 1})
    assert (r.seconds("a", None), r.seconds("b", 1.0)) == (float(MAX_SECONDS), 1.0)
    assert problems == [f"cfg.yaml: sec.b: must be at most 10 years (got {MAX_SECONDS + 1})"]

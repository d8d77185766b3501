"""The validation toolkit every section of vpcprobe.yaml is read with.

A problem is recorded as `file: field.path: what is wrong` and reading goes on, so one ConfigError
lists every problem of a file: fixing them one run at a time is how a config stays broken.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from shared.errors import VpcprobeError, excerpt

# Problems listed in one error: a generated config can hold a hundred thousand wrong fields.
MAX_PROBLEMS = 100


class ConfigError(VpcprobeError):
    """One or more config problems, each as `file: path: what is wrong` (the first MAX_PROBLEMS of them)."""

    def __init__(self, problems: list[str]):
        if len(problems) > MAX_PROBLEMS:
            problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems"]
        self.problems = problems
        super().__init__("\n".join(problems))


_DURATION = re.compile(r"^(\d{1,15}(?:\.\d{1,15})?)\s*(ms|s|m|h)?\Z")
_WHERE_CHARS = 240  # a field path in a problem, at most
# Longer than any timeout, interval or window means, and far from what timedelta and event loops overflow at.
MAX_SECONDS = 10 * 366 * 86400


class Reader:
    """Reads one mapping, recording problems with their field path instead of stopping at the first."""

    def __init__(self, data: Any, path: str, problems: list[str], file: str):
        self.path, self.problems, self.file = path, problems, file
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.error(f"must be a mapping, got {type(data).__name__}")
            data = {}
        self.data = data
        self.seen: set[str] = set()

    def error(self, message: str, key: str | None = None) -> None:
        key = key if key is None or len(key) <= 60 else key[:60] + "…"  # a key may be a megabyte of YAML
        where = f"{self.path}.{key}" if key and self.path else (key or self.path or "(top level)")
        if len(where) > _WHERE_CHARS:  # the path quotes names from the file (maintenance[<name>]): both ends kept
            where = where[: _WHERE_CHARS // 2] + "…" + where[-_WHERE_CHARS // 3 :]
        self.problems.append(f"{self.file}: {where}: {message}")

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.get(key)
        if value is None:
            if required:
                self.error("is required", key)
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(f"must be a string, got {type(value).__name__}", key)
            return default
        return str(value)

    def choice(self, key: str, options: tuple[str, ...], default: str | None) -> str | None:
        value = self.str(key, default)
        if value is not None and value not in options:
            self.error(f"must be one of {', '.join(options)} (got {excerpt(value)})", key)
            return default
        return value

    def int(self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(f"must be a whole number >= {minimum} (got {excerpt(value)})", key)
            return default
        if maximum is not None and value > maximum:
            self.error(f"must be at most {maximum} (got {excerpt(value)})", key)
            return default
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(f"must be true or false (got {excerpt(value)})", key)
            return default
        return value

    def seconds(self, key: str, default: float | None) -> float | None:
        """A duration: 5, 5s, 500ms, 2m; bare numbers are seconds; at most MAX_SECONDS (10 years)."""
        value = self.get(key)
        if value is None:
            return default
        text = value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) else ""
        m = _DURATION.match(text.strip()) if not isinstance(value, bool) else None
        if not m or float(m.group(1)) <= 0:
            self.error(f"must be a positive duration such as 500ms, 5s or 2m (got {excerpt(value)})", key)
            return default
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
        seconds = float(m.group(1)) * scale
        if seconds > MAX_SECONDS:
            self.error(f"must be at most 10 years (got {excerpt(value)})", key)
            return default
        return seconds

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                close = difflib.get_close_matches(str(key), sorted(self.seen), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(sorted(self.seen))}"
                self.error(f"unknown field{hint}", str(key))

"""History rows held as columns: one tuple per field, not one object per row.

Why: a day of 1000 targets at one round a minute is 1.44 million rounds, and 30 days of hourly
aggregates another 720,000 rows. One object a row took ~3.8 s to build from the store (most of it the
cyclic collector walking them) and ~210 MiB to hold; columns are cut from each stored object with zip
(C speed) and hold the same values in a few thousand tuples. Indexing or iterating gives one row as a
Point or an HourPoint, for the few callers that want one at a time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, ClassVar, NamedTuple, TypeVar

from shared.history.objects import LETTER_STATUS, STATUS_LETTER
from shared.verdict.status import Status

AVAILABLE_LETTERS = (STATUS_LETTER[Status.UP], STATUS_LETTER[Status.DEGRADED])
DOWN_LETTER = STATUS_LETTER[Status.DOWN]

C = TypeVar("C", bound="Columns")


@dataclass(frozen=True, slots=True)
class Point:
    """One round of one target (full resolution, the last 24 h)."""

    at: float  # epoch seconds of the round
    status: Status
    total_ms: float | None
    ttfb_ms: float | None
    code: str | None  # diagnosis code, None when up


class HourPoint(NamedTuple):
    """One hourly aggregate of one target (older than 24 h, kept 30 days)."""

    hour: float  # epoch seconds of the hour start (UTC)
    rounds: int  # rounds with a known status: unknown rounds are left out, as from uptime
    up_rounds: int  # of those, up or degraded (available)
    p50_ms: float | None  # nearest-rank percentiles of the available rounds' total
    p95_ms: float | None
    worst_code: str | None  # the most severe status's most frequent code


class Columns:
    """Rows in time order as one sequence per field of FIELDS; the first field is the time."""

    FIELDS: ClassVar[tuple[str, ...]] = ()
    EMPTY: ClassVar[tuple[Sequence[Any], ...]] = ()  # the columns of no rows
    __slots__ = ("columns",)

    def __init__(self, *columns: Sequence[Any]) -> None:
        columns = columns or self.EMPTY
        if len(columns) != len(self.FIELDS) or len({len(c) for c in columns}) != 1:
            raise ValueError(f"{type(self).__name__} takes {len(self.FIELDS)} columns of one length")
        self.columns = columns

    @classmethod
    def joined(cls: type[C], parts: Sequence[C]) -> C:
        """The parts one after another (each in time order, the parts in time order too)."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls()
        return cls(*(_concat([p.columns[i] for p in parts]) for i in range(len(cls.FIELDS))))

    def between(self: C, start: float, end: float, *, from_start: bool = False) -> C:
        """The rows whose time t has start < t <= end (start <= t <= end `from_start`)."""
        times = self.columns[0]
        lo = (bisect.bisect_left if from_start else bisect.bisect_right)(times, start)
        hi = bisect.bisect_right(times, end)
        return self if (lo, hi) == (0, len(times)) else self[lo:hi]

    def rows(self) -> list[list[Any]]:
        """JSON rows, fields in FIELDS order."""
        return [list(row) for row in zip(*self.columns)]

    def __len__(self) -> int:
        return len(self.columns[0])

    def __getitem__(self, index: Any) -> Any:
        """One row for an int index, the same kind of Columns for a slice."""
        if isinstance(index, slice):
            return type(self)(*(c[index] for c in self.columns))
        return self._row(*(c[index] for c in self.columns))

    def __iter__(self) -> Iterator[Any]:
        return map(self._row, *self.columns)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(tuple(a) == tuple(b) for a, b in zip(self.columns, other.columns))  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} rows)"

    def _row(self, *values: Any) -> Any:
        raise NotImplementedError


class Series(Columns):
    """A target's rounds: at, status (one letter a round, objects.STATUS_LETTER), total_ms, ttfb_ms, code."""

    FIELDS = ("at", "status", "total_ms", "ttfb_ms", "code")
    EMPTY = ((), "", (), (), ())
    __slots__ = ()

    @classmethod
    def of(cls, points: Iterable[Point]) -> Series:
        """Columns of Point rows (in time order)."""
        rows = list(points)
        return cls(
            tuple(p.at for p in rows),
            "".join(STATUS_LETTER[Status(p.status)] for p in rows),
            tuple(p.total_ms for p in rows),
            tuple(p.ttfb_ms for p in rows),
            tuple(p.code for p in rows),
        )

    @property
    def at(self) -> Sequence[float]:
        return self.columns[0]

    @property
    def status(self) -> str:
        return self.columns[1]

    @property
    def total_ms(self) -> Sequence[float | None]:
        return self.columns[2]

    def counts(self) -> tuple[int, int]:
        """(available, known) rounds: up or degraded, and those plus down (unknown ones are left out)."""
        letters = self.status
        available = sum(map(letters.count, AVAILABLE_LETTERS))
        return available, available + letters.count(DOWN_LETTER)

    def rows(self) -> list[list[Any]]:
        """JSON rows in FIELDS order, the status as its text."""
        at, letters, total, ttfb, code = self.columns
        statuses = (LETTER_STATUS[s].value for s in letters)
        return [list(row) for row in zip(at, statuses, total, ttfb, code)]

    def _row(self, at: float, letter: str, total: float | None, ttfb: float | None, code: str | None) -> Point:
        return Point(at, LETTER_STATUS[letter], total, ttfb, code)


class Hours(Columns):
    """A target's hourly aggregates, the fields of HourPoint."""

    FIELDS = HourPoint._fields
    EMPTY = ((),) * len(HourPoint._fields)
    __slots__ = ()

    def sums(self) -> tuple[int, int]:
        """(up_rounds, rounds) over these hours."""
        return sum(self.columns[2]), sum(self.columns[1])

    def _row(self, *values: Any) -> HourPoint:
        return HourPoint(*values)


def _concat(columns: list[Sequence[Any]]) -> Sequence[Any]:
    if isinstance(columns[0], str):
        return "".join(columns)  # type: ignore[arg-type]
    return tuple(chain.from_iterable(columns))

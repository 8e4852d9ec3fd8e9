"""Reading the recipients of ``send-many``: a text file (one openid per line) or a CSV file."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Final

import attrs

__all__ = ["Recipients", "read_recipients"]

#: The CSV column that holds the openids (matched case-insensitively); else the first column.
OPENID_COLUMN: Final = "openid"


@attrs.frozen(kw_only=True)
class Recipients:
    """The openids to send to, each once, in file order, and how many repeats were dropped."""

    openids: list[str]
    duplicates: int = 0


def read_recipients(stream: IO[str], name: str = "-") -> Recipients:
    """Read openids from ``stream``.

    Text: one openid per line; blank lines and lines starting with ``#`` are ignored. CSV (a
    ``.csv`` name, or a first line with a comma): the ``openid`` column when the header names
    one, else the first column of every row. Surrounding whitespace is dropped; repeats are sent
    once.
    """
    lines = [line for line in stream.read().splitlines() if line.strip()]
    lines = [line for line in lines if not line.lstrip().startswith("#")]
    is_csv = name.lower().endswith(".csv") or bool(lines and "," in lines[0])
    values = _from_csv(lines) if is_csv else (line.strip() for line in lines)
    openids: dict[str, None] = {}
    total = 0
    for value in values:
        if value:
            openids[value] = None
            total += 1
    return Recipients(openids=list(openids), duplicates=total - len(openids))


def _from_csv(lines: list[str]) -> Iterable[str]:
    rows = [row for row in csv.reader(lines) if row]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if OPENID_COLUMN in header:
        column = header.index(OPENID_COLUMN)
        return (row[column].strip() for row in rows[1:] if len(row) > column)
    return (row[0].strip() for row in rows)

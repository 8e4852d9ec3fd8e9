"""Reading the recipients of ``send-many``: a text file (one openid per line) or a CSV file.

Both are read by the ``csv`` module straight from the stream (a text file is a CSV of one
column), so a quoted field may hold commas and newlines. Blank rows and rows whose first cell
starts with ``#`` are ignored.

The first row is a header when it names an ``openid`` column (any case; ``open_id`` and
``Open ID`` too): the openids come from that column. Without one, the openids come from the
first column, and the first row is still taken as a header (and never sent to) when its first
cell cannot be an openid: not made of ASCII letters, digits, ``-`` and ``_`` only (``用户``,
``user id``), or of another length than the openids below it, which all share one (an
account's openids have one length; ``user`` above 28-character openids is a header).
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Final

import attrs

__all__ = ["Recipients", "read_recipients"]

#: The CSV column that holds the openids (matched ignoring case, spaces, ``_`` and ``-``).
OPENID_COLUMN: Final = "openid"
#: What an openid is made of (URL-safe base64 characters); anything else in row 1 is a header.
_OPENID_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+")
_IGNORED_IN_NAMES: Final = re.compile(r"[\s_-]+")


@attrs.frozen(kw_only=True)
class Recipients:
    """The openids to send to, each once, in file order, and what was left out and why."""

    openids: list[str]
    #: Repeats dropped (each openid is sent once).
    duplicates: int = 0
    #: Rows without a value in the openid column (too short, or the cell empty).
    missing: int = 0
    #: The header row, when the file has one (it is never sent to).
    header: tuple[str, ...] | None = None
    #: The column the openids come from (0-based).
    column: int = 0

    def describe_source(self) -> str | None:
        """A sentence for people about the header and the column used, or ``None`` (no header)."""
        if self.header is None:
            return None
        cells = ", ".join(self.header)
        name = self.header[self.column] if self.column < len(self.header) else ""
        if _is_openid_name(name):
            return f"header row ({cells}): openids from the {name!r} column"
        return (
            f"first row ({cells}) taken as a header, not an openid (no 'openid' column): "
            f"openids from column {self.column + 1} ({name!r})"
        )


def _is_openid_name(cell: str) -> bool:
    return _IGNORED_IN_NAMES.sub("", cell).lower() == OPENID_COLUMN


def _rows(stream: Iterable[str]) -> Iterable[list[str]]:
    """The CSV rows that hold something (blank and ``#`` rows skipped), cells stripped."""
    for row in csv.reader(stream):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        yield cells


def _is_header(first: Sequence[str], following: Sequence[Sequence[str]]) -> bool:
    """Whether a first row without an ``openid`` column is a header (see the module doc)."""
    cell = first[0] if first else ""
    if not _OPENID_SHAPE.fullmatch(cell):
        return True
    lengths = {len(row[0]) for row in following if row and row[0]}
    return len(following) >= 2 and len(lengths) == 1 and len(cell) not in lengths


#: How many rows after the first decide whether it is a header (they share one length).
_SAMPLE: Final = 20


def read_recipients(stream: Iterable[str]) -> Recipients:
    """Read openids from ``stream`` (an open text file, or any iterable of lines).

    Surrounding whitespace is dropped; repeats are sent once.
    """
    rows = iter(_rows(stream))
    first = next(rows, None)
    if first is None:
        return Recipients(openids=[])
    sample = list(itertools.islice(rows, _SAMPLE))
    header: tuple[str, ...] | None = None
    column = next((n for n, cell in enumerate(first) if _is_openid_name(cell)), None)
    if column is not None:
        header, body = tuple(first), sample
    else:
        column = 0
        if _is_header(first, sample):
            header, body = tuple(first), sample
        else:
            body = [first, *sample]
    openids: dict[str, None] = {}
    total = missing = 0
    for row in itertools.chain(body, rows):
        value = row[column] if len(row) > column else ""
        if not value:
            missing += 1
            continue
        openids[value] = None
        total += 1
    return Recipients(
        openids=list(openids),
        duplicates=total - len(openids),
        missing=missing,
        header=header,
        column=column,
    )

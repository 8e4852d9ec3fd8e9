"""``wechat-kf records export``: chat records of any time range, streamed to JSONL or CSV."""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Final

import click

from wechat_kf import AsyncWeChat, Record
from wechat_kf.cli._context import Settings, common_options, pass_settings, run
from wechat_kf.cli._output import Output

__all__ = ["FIELDS", "RecordWriter", "export_records", "parse_time", "records"]

#: The columns of an export, in order (JSONL keys and CSV header alike).
FIELDS: Final = ("time", "openid", "opercode", "event", "worker", "text")
FORMATS: Final = ("jsonl", "csv")
#: Redraw the progress bar at most once per this many records.
_PROGRESS_EVERY: Final = 200


def parse_time(text: str, name: str = "TIME") -> int:
    """``text`` as int unix seconds: ISO 8601 with a timezone, unix seconds, or ``now``.

    Raises:
        click.BadParameter: not a time, or a naive one (it would be ambiguous).
    """
    text = text.strip()
    if text.lower() == "now":
        return int(time.time())
    if re.fullmatch(r"\d+", text):
        return int(text)
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time: use ISO 8601 with a timezone "
            "(2024-05-01T09:00:00+08:00, 2024-05-01T01:00:00Z) or unix seconds",
            param_hint=name,
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise click.BadParameter(
            f"{text!r} has no timezone and would be ambiguous: add one, e.g. "
            f"{text}+08:00 or {text}Z",
            param_hint=name,
        )
    return int(moment.timestamp())


def _time_option(_: click.Context, param: click.Parameter, value: str) -> int:
    return parse_time(value, f"--{param.name}")


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def record_row(record: Record) -> dict[str, Any]:
    """A record as the export writes it (``time`` in ISO 8601 UTC, ``event`` the code's name)."""
    return {
        "time": record.time.astimezone(timezone.utc).isoformat(),
        "openid": record.openid,
        "opercode": int(record.opercode),
        "event": record.opercode.name,
        "worker": record.worker,
        "text": record.text,
    }


#: A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a user's "=HYPERLINK(...)" stays inert."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class RecordWriter:
    """Writes records as JSON lines or CSV rows (with a header) to a text stream."""

    def __init__(self, stream: IO[str], fmt: str) -> None:
        self.format = fmt
        self._stream = stream
        self._csv: Any = None
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, fieldnames=FIELDS)
            self._csv.writeheader()

    def write(self, record: Record) -> None:
        """Write one record."""
        row = record_row(record)
        if self._csv is not None:
            self._csv.writerow({key: _cell(value) for key, value in row.items()})
        else:
            self._stream.write(json.dumps(row, ensure_ascii=False) + "\n")


async def export_records(
    wx: AsyncWeChat,
    since: int,
    until: int,
    stream: IO[str],
    *,
    fmt: str = "jsonl",
    page_size: int = 10_000,
    output: Output | None = None,
) -> Counter[str]:
    """Stream every record with ``since <= time <= until`` to ``stream``; count them by event.

    A progress bar (on ``output``'s stderr) follows the records' times through the range.
    """
    writer = RecordWriter(stream, fmt)
    events: Counter[str] = Counter()
    span = max(until - since, 1)
    progress = (output or Output(json_mode=True)).progress("exporting", total=span, counts=False)
    with progress as bar:
        count = 0
        async for record in wx.records.iter(since, until, number=page_size):
            writer.write(record)
            events[record.opercode.name] += 1
            count += 1
            if count % _PROGRESS_EVERY == 0:
                done = min(max(int(record.time.timestamp()) - since, 0), span)
                bar.update(completed=done, description=f"exporting: {count} records")
        bar.update(completed=span, description=f"exported: {count} records")
    return events


@click.group()
def records() -> None:
    """Chat records (聊天记录)."""


@records.command("export")
@click.option(
    "--since", required=True, metavar="TIME", callback=_time_option, help="Start (inclusive)."
)
@click.option(
    "--until",
    metavar="TIME",
    callback=_time_option,
    default="now",
    show_default=True,
    help="End (inclusive).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="jsonl or csv (default: from the output file's extension, else jsonl).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    help='Where to write ("-": stdout, the default).',
)
@click.option(
    "--page-size",
    type=click.IntRange(1, 10_000),
    default=10_000,
    show_default=True,
    help="Records per request.",
)
@common_options
@pass_settings
def export(
    settings: Settings,
    since: int,
    until: int,
    fmt: str | None,
    output: Path,
    page_size: int,
) -> None:
    """Export every chat record from --since to --until, for a range of any length.

    TIME is ISO 8601 with a timezone (2024-05-01T09:00:00+08:00, ...Z), unix seconds, or "now".
    Records stream to the file page by page (memory stays flat); a file is written as FILE.part
    and renamed when complete.

    \b
    wechat-kf records export --since 2024-05-01T00:00+08:00 --until 2024-06-01T00:00Z -o may.csv
    """
    if until <= since:
        ctx = click.get_current_context()
        if ctx.get_parameter_source("until") is click.core.ParameterSource.DEFAULT:
            # The mistake is in --since (e.g. "--since now"): --until was not given.
            raise click.BadParameter(
                f"must be before --until, which defaults to now ({_iso(until)})",
                param_hint="--since",
            )
        raise click.BadParameter(
            f"must be after --since ({_iso(until)} is not after {_iso(since)})",
            param_hint="--until",
        )
    to_stdout = str(output) == "-"
    if fmt is None:
        fmt = "csv" if output.suffix.lower() == ".csv" else "jsonl"
    out = settings.output

    async def main() -> None:
        async with settings.client() as wx:
            if to_stdout:
                events = await export_records(
                    wx, since, until, sys.stdout, fmt=fmt, page_size=page_size, output=out
                )
                sys.stdout.flush()
            else:
                events = await _export_to_file(wx, since, until, output, fmt, page_size, out)
        total = sum(events.values())
        where = "stdout" if to_stdout else str(output)
        text = f"{total} records from {_iso(since)} to {_iso(until)} written to {where} ({fmt})"
        if to_stdout:
            out.note(text)
        else:
            out.success(
                text,
                records=total,
                output=str(output),
                format=fmt,
                since=_iso(since),
                until=_iso(until),
                events=dict(events.most_common()),
            )

    run(settings, main)


async def _export_to_file(
    wx: AsyncWeChat, since: int, until: int, path: Path, fmt: str, page_size: int, out: Output
) -> Counter[str]:
    partial = path.with_name(path.name + ".part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as stream:
            events = await export_records(
                wx, since, until, stream, fmt=fmt, page_size=page_size, output=out
            )
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return events

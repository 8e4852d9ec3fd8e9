"""Everything ``wechat-kf`` prints: tables for people, JSON for scripts, one-line errors, progress.

Results go to stdout (a rich table, or one JSON document with ``--json``); notes, progress bars
and errors go to stderr, so ``wechat-kf --json agents list | jq`` always sees clean JSON. No text
printed here ever holds an access token or a secret: errors are built from errcodes, WeChat's
``errmsg`` and the SDK's redacted messages.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from wechat_kf import (
    APIError,
    HTTPStatusError,
    MalformedResponseError,
    TokenError,
    TokenFetchError,
    TransportError,
    ValidationError,
    WeChatError,
)
from wechat_kf.cli._exit import exit_code_for

__all__ = [
    "Output",
    "ProgressBar",
    "describe_error",
    "error_object",
    "format_time",
    "jsonable",
    "plural",
]

#: What each transport error means, by class name (``SendInterruptedError`` is bulk's).
_TRANSPORT_LABELS: Final = {
    "ConnectFailedError": "could not connect",
    "ResponseTimeoutError": "no answer in time",
    "ConnectionLostError": "connection lost",
    "SendInterruptedError": "interrupted in flight",
    "RequestBuildError": "request not sent",
}
_MAY_HAVE_REACHED: Final = " (it may have reached WeChat)"
#: Seconds between two progress lines when stderr is not a terminal (a log, a pipe).
PROGRESS_LINE_EVERY: Final = 5.0
_RID_SUFFIX: Final = re.compile(r"\s*(?:rid:\s*\S+|hint:\s*\[[^\]]*\])\s*$")


def plural(count: int, noun: str) -> str:
    """``1 user``, ``2 users`` (English nouns that take an ``s``)."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def format_time(value: datetime | None) -> str:
    """A timestamp for people: local time with its UTC offset (``""`` for none)."""
    if value is None:
        return ""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: attrs classes as objects, aware datetimes as ISO 8601."""
    if attrs.has(type(value)):
        return {f.name: jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    return value


def describe_error(exc: BaseException) -> str:
    """One line that says what went wrong, without ``error:`` (never a token or a secret)."""
    if isinstance(exc, APIError):
        meaning = exc.hint or _RID_SUFFIX.sub("", exc.errmsg).strip() or type(exc).__name__
        line = f"errcode {exc.errcode} ({meaning})"
        return f"{line} rid: {exc.rid}" if exc.rid else line
    if isinstance(exc, ValidationError):
        return f"invalid {exc.field}: {exc.limit}"
    if isinstance(exc, HTTPStatusError):
        where = f" from {exc.method} {exc.path}" if exc.path else ""
        return f"HTTP {exc.status_code}{where}: WeChat (or a proxy) did not answer normally"
    if isinstance(exc, TransportError):
        line = f"{_TRANSPORT_LABELS.get(type(exc).__name__, 'network')}: {exc}"
        if exc.may_have_reached_wechat:
            line += _MAY_HAVE_REACHED
        return line
    if isinstance(exc, MalformedResponseError):
        return f"unexpected answer: {exc}"
    if isinstance(exc, TokenFetchError) and isinstance(exc.__cause__, WeChatError):
        # What the token endpoint did, without "it may have reached WeChat": the token request
        # may have, the command's own request never left.
        cause = describe_error(exc.__cause__).removesuffix(_MAY_HAVE_REACHED)
        return f"no access token ({cause}): nothing was sent"
    if isinstance(exc, TokenError):
        return f"access token: {exc}"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, WeChatError):  # e.g. bulk's SendCancelledError: a sentence already
        return str(exc) or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def error_object(exc: BaseException) -> dict[str, Any]:
    """The ``--json`` form of an error: its type, the one-line message and WeChat's fields."""
    data: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": describe_error(exc),
        "exit_code": int(exit_code_for(exc)),
    }
    if isinstance(exc, APIError):
        data.update(errcode=exc.errcode, errmsg=exc.errmsg, hint=exc.hint or None, rid=exc.rid)
    elif isinstance(exc, ValidationError):
        data.update(field=exc.field, limit=exc.limit)
    return data


def _cell(value: object) -> Text:
    """A table cell: never parsed as rich markup (``[image]`` is a record's text)."""
    if value is None:
        return Text("")
    if isinstance(value, Text):
        return value
    if isinstance(value, datetime):
        return Text(format_time(value))
    if isinstance(value, enum.Enum):
        return Text(str(value.name if isinstance(value.value, int) else value.value))
    return Text(str(value))


class ProgressBar:
    """Where a command reports its progress; this base shows nothing (``--json``)."""

    def advance(self, amount: float = 1) -> None:
        """Move forward by ``amount``."""

    def update(self, *, completed: float | None = None, description: str | None = None) -> None:
        """Set how far it is, or its label."""

    def close(self) -> None:
        """The work is over (finished or not)."""


class _RichBar(ProgressBar):
    """A rich progress bar, redrawn in place: for a terminal."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._task, amount)

    def update(self, *, completed: float | None = None, description: str | None = None) -> None:
        self._progress.update(self._task, completed=completed, description=description)


class _ProgressLines(ProgressBar):
    """A line every ``every`` seconds, plus one at the start and one at the end: for logs.

    ``sending: 1,200/3,000 (40%), 12 s`` (``counts``) or ``exporting: 800 records (40%), 12 s``.
    """

    def __init__(
        self,
        console: Console,
        description: str,
        total: float | None,
        *,
        counts: bool,
        clock: Callable[[], float],
        every: float,
    ) -> None:
        self._console = console
        self._description = description
        self._total = total
        self._counts = counts
        self._clock = clock
        self._every = every
        self._completed = 0.0
        self._started = clock()
        self._due = self._started + every
        self._print(self._started)

    def advance(self, amount: float = 1) -> None:
        self._completed += amount
        self._tick()

    def update(self, *, completed: float | None = None, description: str | None = None) -> None:
        if completed is not None:
            self._completed = completed
        if description is not None:
            self._description = description
        self._tick()

    def close(self) -> None:
        self._print(self._clock(), final=True)

    def _tick(self) -> None:
        now = self._clock()
        if now >= self._due:
            self._print(now)
            self._due = now + self._every

    def _print(self, now: float, *, final: bool = False) -> None:
        parts = [self._description]
        if self._counts:
            total = "?" if self._total is None else f"{self._total:,.0f}"
            parts.append(f": {self._completed:,.0f}/{total}")
        if self._total:
            parts.append(f" ({min(self._completed / self._total, 1.0):.0%})")
        elapsed = now - self._started
        parts.append(f" in {elapsed:,.0f} s" if final else f", {elapsed:,.0f} s")
        self._console.print(Text("".join(parts), style="dim"))


class Output:
    """Where and how a command prints, chosen by ``--json``.

    ``clock`` and ``progress_every`` pace the progress lines printed when stderr is not a
    terminal (tests inject a clock).
    """

    def __init__(
        self,
        *,
        json_mode: bool = False,
        debug: bool = False,
        stderr: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        progress_every: float = PROGRESS_LINE_EVERY,
    ) -> None:
        self.json_mode = json_mode
        self.debug = debug
        self.stdout: Console = Console(highlight=False)
        # Notes, warnings and errors stay one line each (the terminal wraps them, not rich).
        self.stderr: Console = stderr or Console(stderr=True, highlight=False, soft_wrap=True)
        self._clock = clock
        self._progress_every = progress_every

    # ------------------------------------------------------------------ results

    def emit_json(self, data: Any) -> None:
        """Print one JSON document on stdout."""
        text = json.dumps(jsonable(data), ensure_ascii=False, indent=2)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def show(
        self,
        data: Any,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        **table: Any,
    ) -> None:
        """``data`` as JSON for scripts (``--json``), else ``rows`` as a table for people."""
        if self.json_mode:
            self.emit_json(data)
        else:
            self.table(columns, rows, **table)

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        *,
        title: str | None = None,
        caption: str | None = None,
        empty: str = "(none)",
        numeric: Sequence[str] = (),
    ) -> None:
        """Print a table for people on stdout (nothing in JSON mode); ``numeric`` right-aligned."""
        if self.json_mode:
            return
        table = Table(caption=caption, caption_justify="left")
        for column in columns:
            table.add_column(
                column, overflow="fold", justify="right" if column in numeric else "left"
            )
        count = 0
        for row in rows:
            table.add_row(*(_cell(value) for value in row))
            count += 1
        if count == 0 and empty:
            self.stdout.print(Text(f"{title}: {empty}" if title else empty))
            return
        if title:
            self.stdout.print(Text(title, style="bold"), soft_wrap=True)
        self.stdout.print(table)

    def line(self, text: str | Text = "", *, style: str | None = None) -> None:
        """A line for people on stdout (never parsed as markup); nothing in JSON mode."""
        if not self.json_mode:
            line = text if isinstance(text, Text) else Text(text, style=style or "")
            self.stdout.print(line, soft_wrap=True)

    def note(self, text: str) -> None:
        """A remark for people on stderr (skipped in JSON mode)."""
        if not self.json_mode:
            self.stderr.print(Text(text, style="dim"))

    def success(self, text: str, **data: Any) -> None:
        """A finished action: ``✓ text`` for people, ``{"ok": true, ...data}`` in JSON mode."""
        if self.json_mode:
            self.emit_json({"ok": True, **data})
        else:
            self.stdout.print(Text("✓ ", style="green") + Text(text), soft_wrap=True)

    def warning(self, text: str) -> None:
        """A one-line warning on stderr."""
        self.stderr.print(Text("warning: ", style="yellow bold") + Text(text))

    # ------------------------------------------------------------------ errors

    def error(self, exc: BaseException) -> None:
        """Report an error: one line on stderr (and JSON on stdout with ``--json``).

        With ``--debug`` the traceback comes first (the SDK redacts tokens in exception texts).
        """
        if self.debug and not isinstance(exc, KeyboardInterrupt):
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        self.error_line(describe_error(exc))
        if self.json_mode:
            self.emit_json({"ok": False, "error": error_object(exc)})

    def error_line(self, message: str) -> None:
        """``error: message`` on stderr."""
        self.stderr.print(Text("error: ", style="red bold") + Text(message))

    # ------------------------------------------------------------------ progress

    @contextmanager
    def progress(
        self, description: str, total: float | None, *, counts: bool = True
    ) -> Iterator[ProgressBar]:
        """Progress on stderr for the duration of the ``with`` block.

        A bar on a terminal; elsewhere (a log file, a pipe) a line every few seconds, with one
        at the start and one at the end; nothing with ``--json``. ``counts`` shows
        ``done/total`` (items); without it only the percentage shows.
        """
        if self.json_mode:
            yield ProgressBar()
            return
        if not self.stderr.is_terminal:
            lines = _ProgressLines(
                self.stderr,
                description,
                total,
                counts=counts,
                clock=self._clock,
                every=self._progress_every,
            )
            try:
                yield lines
            finally:
                lines.close()
            return
        columns: list[ProgressColumn] = [
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
        ]
        if counts:
            columns.append(MofNCompleteColumn())
        columns += [
            TextColumn("[progress.percentage]{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        progress = Progress(*columns, console=self.stderr, transient=False)
        with progress:
            yield _RichBar(progress, progress.add_task(description, total=total))

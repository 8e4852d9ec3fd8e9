"""The results file of ``send-many``: a JSON line per recipient event, so a re-run resumes.

Each line is ``{"openid", "status", "errcode", "error", "time"}``, written and flushed at once.
It works as a write-ahead log: a ``pending`` line is written *before* a recipient's request
leaves, its outcome (``sent``, ``failed``, ``unknown``, ``skipped``) when known. A re-run reads
the file and skips every recipient whose latest status is ``sent``, and ``unknown`` or
``pending`` too unless asked to retry those: the message may have reached the user, never send
it again silently. ``failed`` (WeChat refused) and ``skipped`` (not attempted) are sent again.
So even a run killed outright (``kill -9``, a closed terminal) never causes a second message.

A file knows what it was for: a run begins with a line ``{"run": "send-many", "fingerprint",
"message", "continues", "time"}``, the fingerprint of the message it sends (see
:meth:`~wechat_kf.cli._messages.Outbound.fingerprint`). The lines after it belong to that run;
a later run line (``"continues": false``) starts a new one, whose recipients are all unsent
again. ``"continues": true`` marks a file written before fingerprints existed, adopted by the
run: its earlier lines still count.

An interrupted run may leave a torn last line: it is ignored when reading, and the next line
starts on a fresh one. While a run writes to the file it holds an exclusive lock on it (where
the platform has ``fcntl``), so two runs can never both send from the same file.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import attrs

__all__ = [
    "PENDING",
    "STATUSES",
    "UNSURE",
    "Outcome",
    "ResultsFile",
    "ResultsFileBusy",
    "RunHeader",
]

SENT: Final = "sent"
FAILED: Final = "failed"
UNKNOWN: Final = "unknown"
SKIPPED: Final = "skipped"
#: Written before a recipient's request leaves; replaced by its outcome. Left alone by a run
#: that was killed: the message may have reached the user.
PENDING: Final = "pending"
#: Every status a recipient can end with, in the order summaries show them.
STATUSES: Final = (SENT, FAILED, UNKNOWN, SKIPPED)
#: Latest statuses a re-run does not send to (unless told to retry the unsure ones).
UNSURE: Final = frozenset({UNKNOWN, PENDING})
#: The ``run`` value of the line that starts a run.
RUN_KIND: Final = "send-many"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class ResultsFileBusy(Exception):
    """Another process is writing this results file (a ``send-many`` run in progress)."""


@attrs.frozen(kw_only=True)
class Outcome:
    """What happened to one recipient."""

    openid: str
    status: str
    errcode: int | None = None
    error: str | None = None

    def to_json(self) -> str:
        """One line of the results file."""
        data = {
            "openid": self.openid,
            "status": self.status,
            "errcode": self.errcode,
            "error": self.error,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return json.dumps(data, ensure_ascii=False)


@attrs.frozen(kw_only=True)
class RunHeader:
    """The line that starts a run: which message it sends (its fingerprint)."""

    fingerprint: str
    #: The message for people (``text: 【通知】...``), to say what a file was for.
    message: str = ""
    #: The run adopts the lines before it (a file written before fingerprints existed).
    continues: bool = False

    def to_json(self) -> str:
        """One line of the results file."""
        data = {
            "run": RUN_KIND,
            "fingerprint": self.fingerprint,
            "message": self.message,
            "continues": self.continues,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return json.dumps(data, ensure_ascii=False)


def _parse(line: str) -> Outcome | RunHeader:
    data = json.loads(line)
    if data.get("run") == RUN_KIND:
        return RunHeader(
            fingerprint=str(data["fingerprint"]),
            message=str(data.get("message") or ""),
            continues=data.get("continues") is True,
        )
    return Outcome(
        openid=str(data["openid"]),
        status=str(data["status"]),
        errcode=data.get("errcode"),
        error=data.get("error"),
    )


class ResultsFile:
    """An append-only JSONL file of outcomes: read what an earlier run did, record this run's."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        #: Lines an earlier run left unreadable (a torn last line after an interruption).
        self.unreadable = 0
        #: The latest run's first line, as of the last read (``None``: no run line at all).
        self.run: RunHeader | None = None
        #: Outcomes recorded without any run line (a file from before fingerprints existed).
        self.untagged = 0

    def __repr__(self) -> str:
        return f"ResultsFile({str(self.path)!r})"

    def outcomes(self) -> Iterator[Outcome]:
        """Every outcome of the latest run, oldest first (unreadable lines are skipped).

        Also sets :attr:`run`, :attr:`untagged` and :attr:`unreadable`.
        """
        self.unreadable = self.untagged = 0
        self.run = None
        if not self.path.exists():
            return
        run: list[Outcome] = []
        with self.path.open(encoding="utf-8") as stream:
            for line in stream:
                if not line.strip():
                    continue
                try:
                    entry = _parse(line)
                except (ValueError, KeyError, TypeError, AttributeError):
                    self.unreadable += 1
                    continue
                if isinstance(entry, RunHeader):
                    if not entry.continues:
                        run.clear()  # a new run: earlier outcomes were for another one
                    self.run = entry
                else:
                    if self.run is None:
                        self.untagged += 1
                    run.append(entry)
        yield from run

    def latest(self) -> dict[str, str]:
        """Each recipient's latest status."""
        return {outcome.openid: outcome.status for outcome in self.outcomes()}

    def summary(self) -> Counter[str]:
        """How many recipients stand at each status (their latest outcome)."""
        return Counter(self.latest().values())

    # ------------------------------------------------------------------ writing

    def __enter__(self) -> ResultsFile:
        """Open for appending and take the lock.

        Raises:
            ResultsFileBusy: another run holds the lock.
            OSError: the file cannot be opened.
        """
        stream = self.path.open("a", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                stream.close()
                raise ResultsFileBusy(str(self.path)) from None
        # A torn last line (an interrupted write): start the next outcome on a fresh line.
        if self.path.stat().st_size > 0:
            with self.path.open("rb") as raw:
                raw.seek(-1, os.SEEK_END)
                if raw.read(1) != b"\n":
                    stream.write("\n")
        self._file = stream
        return self

    def start(self, header: RunHeader) -> None:
        """Begin a run: write its first line (the results that follow belong to it)."""
        self._write(header.to_json())
        self.run = header

    def pending(self, openid: str) -> None:
        """Note that ``openid``'s request is about to leave (before it does)."""
        self.record(Outcome(openid=openid, status=PENDING))

    def record(self, outcome: Outcome) -> None:
        """Append one outcome and flush it to the operating system at once."""
        self._write(outcome.to_json())

    def _write(self, line: str) -> None:
        if self._file is None:
            raise RuntimeError("open the results file with `with` before recording")
        self._file.write(line + "\n")
        self._file.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stream, self._file = self._file, None
        if stream is not None:
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()  # also releases the lock

"""The results file of ``send-many``: a JSON line per recipient event, so a re-run resumes.

Each line is ``{"openid", "status", "errcode", "error", "time"}``, written and flushed at once.
It works as a write-ahead log: a ``pending`` line is written *before* a recipient's request
leaves, its outcome (``sent``, ``failed``, ``unknown``, ``skipped``) when known. A re-run reads
the file and skips every recipient whose latest status is ``sent``, and ``unknown`` or
``pending`` too unless asked to retry those: the message may have reached the user, never send
it again silently. ``failed`` (WeChat refused) and ``skipped`` (not attempted) are sent again.
So even a run killed outright (``kill -9``, a closed terminal) never causes a second message.

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

__all__ = ["PENDING", "STATUSES", "UNSURE", "Outcome", "ResultsFile", "ResultsFileBusy"]

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


class ResultsFile:
    """An append-only JSONL file of outcomes: read what an earlier run did, record this run's."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        #: Lines an earlier run left unreadable (a torn last line after an interruption).
        self.unreadable = 0

    def __repr__(self) -> str:
        return f"ResultsFile({str(self.path)!r})"

    def outcomes(self) -> Iterator[Outcome]:
        """Every outcome recorded so far, oldest first (unreadable lines are skipped)."""
        self.unreadable = 0
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as stream:
            for line in stream:
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    outcome = Outcome(
                        openid=str(data["openid"]),
                        status=str(data["status"]),
                        errcode=data.get("errcode"),
                        error=data.get("error"),
                    )
                except (ValueError, KeyError, TypeError):
                    self.unreadable += 1
                    continue
                yield outcome

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
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
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

    def pending(self, openid: str) -> None:
        """Note that ``openid``'s request is about to leave (before it does)."""
        self.record(Outcome(openid=openid, status=PENDING))

    def record(self, outcome: Outcome) -> None:
        """Append one outcome and flush it to the operating system at once."""
        if self._file is None:
            raise RuntimeError("open the results file with `with` before recording")
        self._file.write(outcome.to_json() + "\n")
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

"""The summary of a bulk send: how many were sent, failed (by reason), unknown and skipped."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Final

from rich.text import Text

from wechat_kf.cli._output import Output
from wechat_kf.cli._results import FAILED, SENT, SKIPPED, UNKNOWN, Outcome

__all__ = ["OutcomeSummary", "reason"]

_RID: Final = re.compile(r"\s*rid: \S+$")
_REQUEST: Final = re.compile(r"(?<=: )(?:GET|POST) /\S*: ")


def reason(error: str | None) -> str:
    """An outcome's error without its request id (and path), so equal reasons group together."""
    return _REQUEST.sub("", _RID.sub("", error or ""), count=1)


class OutcomeSummary:
    """Counts outcomes as they arrive; prints the table (or the JSON) at the end."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        #: ``(errcode, reason) -> count`` for failed and unknown recipients.
        self.failed: Counter[tuple[int | None, str]] = Counter()
        self.unknown: Counter[str] = Counter()
        #: ``reason -> count`` for recipients not sent on purpose (already sent, duplicate...).
        self.skipped: Counter[str] = Counter()

    def add(self, outcome: Outcome) -> None:
        """Count one recipient's outcome."""
        self.counts[outcome.status] += 1
        if outcome.status == FAILED:
            self.failed[(outcome.errcode, reason(outcome.error))] += 1
        elif outcome.status == UNKNOWN:
            self.unknown[reason(outcome.error)] += 1
        elif outcome.status == SKIPPED:
            self.skipped[reason(outcome.error) or "not attempted"] += 1

    def skip(self, reason: str, count: int) -> None:
        """Count ``count`` recipients skipped for ``reason``."""
        if count:
            self.counts[SKIPPED] += count
            self.skipped[reason] += count

    @property
    def total(self) -> int:
        """Every recipient counted."""
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        """Whether no recipient failed and none has an unknown outcome."""
        return not self.counts[FAILED] and not self.counts[UNKNOWN]

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary."""
        return {
            "total": self.total,
            **{status: self.counts[status] for status in (SENT, FAILED, UNKNOWN, SKIPPED)},
            "failed_by_reason": [
                {"errcode": errcode, "error": error, "count": count}
                for (errcode, error), count in self.failed.most_common()
            ],
            "unknown_by_reason": [
                {"error": error, "count": count} for error, count in self.unknown.most_common()
            ],
            "skipped_by_reason": [
                {"reason": reason, "count": count} for reason, count in self.skipped.most_common()
            ],
        }

    def render(self, output: Output, *, title: str = "Bulk send") -> None:
        """The summary table for people."""
        rows: list[tuple[Text, int]] = [(Text("sent", style="green"), self.counts[SENT])]
        for (_, error), count in self.failed.most_common():
            rows.append((Text("failed: ", style="red") + Text(error or "no reason given"), count))
        for error, count in self.unknown.most_common():
            label = Text("unknown: ", style="yellow") + Text(error or "no answer")
            rows.append((label, count))
        for reason, count in self.skipped.most_common():
            rows.append((Text("skipped: ", style="dim") + Text(reason), count))
        rows.append((Text("total", style="bold"), self.total))
        output.table(["outcome", "recipients"], rows, title=title, numeric=["recipients"])

"""``wechat-kf records export``: JSONL and CSV files, stdout, time parsing, long ranges."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.cli.conftest import Invoker
from wechat_kf.testing import FakeWeChat

DAY = 86400
T0 = 1_714_521_600  # 2024-05-01T00:00:00Z
CST = timezone(timedelta(hours=8))


def seed(fake: FakeWeChat) -> list[dict[str, object]]:
    """Records over three days (and one outside the range): the expected export rows."""
    rows = []
    for n, (offset, opercode, text, worker) in enumerate(
        [
            (60, 2001, "你好", ""),
            (120, 1001, "", "a@gh"),
            (DAY + 5, 2002, "[image]", "a@gh"),
            (DAY + 6, 2003, '含 "引号", 逗号', "a@gh"),
            (2 * DAY + 7, 1004, "", "a@gh"),
        ]
    ):
        openid = f"o_{n}"
        fake.add_record(openid, opercode, text, worker, time=T0 + offset)
        rows.append(
            {
                "time": datetime.fromtimestamp(T0 + offset, timezone.utc).isoformat(),
                "openid": openid,
                "opercode": opercode,
                "worker": worker,
                "text": text,
            }
        )
    fake.add_record("o_late", 2001, "later", time=T0 + 4 * DAY)
    return rows


def strip_event(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in row.items() if k != "event"} for row in rows]


def test_jsonl_export_of_a_three_day_range_in_small_pages(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    expected = seed(fake)
    output = tmp_path / "may.jsonl"
    since = datetime.fromtimestamp(T0, CST).isoformat()  # 2024-05-01T08:00:00+08:00
    data = wechat_kf.json(
        "records", "export", "--since", since, "--until", str(T0 + 3 * DAY),
        "-o", str(output), "--page-size", "1",
    )  # fmt: skip
    assert data["records"] == 5
    assert data["format"] == "jsonl"
    assert data["since"] == "2024-05-01T00:00:00+00:00"
    assert data["until"] == "2024-05-04T00:00:00+00:00"
    assert data["events"]["AGENT_SENT_MESSAGE"] == 1
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert strip_event(rows) == expected
    assert rows[2]["event"] == "AGENT_SENT_MESSAGE"
    assert not (tmp_path / "may.jsonl.part").exists()
    windows = [r.json() for r in fake.requests_to("/customservice/msgrecord/getmsglist")]
    assert all(w["endtime"] - w["starttime"] < DAY for w in windows)  # 24 h tiles
    assert {w["number"] for w in windows} == {1}


def test_csv_export_by_extension(wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path) -> None:
    expected = seed(fake)
    output = tmp_path / "may.csv"
    result = wechat_kf(
        "records", "export", "--since", "2024-05-01T00:00:00Z", "--until", "2024-05-04T00:00Z",
        "--output", str(output),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "✓ 5 records from 2024-05-01T00:00:00+00:00 to 2024-05-04T00:00:00+00:00" in (
        result.stdout
    )
    with output.open(encoding="utf-8", newline="") as stream:
        rows: list[dict[str, object]] = list(csv.DictReader(stream))
    assert list(rows[0]) == ["time", "openid", "opercode", "event", "worker", "text"]
    assert strip_event(rows) == [{**row, "opercode": str(row["opercode"])} for row in expected]


def test_export_to_stdout_with_summary_on_stderr(wechat_kf: Invoker, fake: FakeWeChat) -> None:
    seed(fake)
    result = wechat_kf(
        "records", "export", "--since", str(T0), "--until", str(T0 + DAY), "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "time,openid,opercode,event,worker,text"
    assert len(lines) == 1 + 2
    assert "2 records from 2024-05-01T00:00:00+00:00" in result.stderr
    # --json keeps stdout for the records
    result = wechat_kf("--json", "records", "export", "--since", str(T0), "--until", str(T0 + DAY))
    assert [json.loads(line)["openid"] for line in result.stdout.splitlines()] == ["o_0", "o_1"]


def test_empty_range(wechat_kf: Invoker, tmp_path: Path) -> None:
    output = tmp_path / "none.csv"
    data = wechat_kf.json("records", "export", "--since", "1700000000", "-o", str(output))
    assert data["records"] == 0
    assert output.read_text(encoding="utf-8").strip() == "time,openid,opercode,event,worker,text"


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2024-05-01T00:00:00", "now", "has no timezone and would be ambiguous"),
        ("yesterday", "now", "is not a time: use ISO 8601 with a timezone"),
        (
            str(T0 + 10),
            str(T0),
            "Invalid value for --until: must be after --since (2024-05-01T00:00:00+00:00 is "
            "not after 2024-05-01T00:00:10+00:00)",
        ),
        ("now", None, "Invalid value for --since: must be before --until, which defaults to now"),
        (
            str(2 * 10**9),
            None,
            "Invalid value for --since: must be before --until, which defaults to now",
        ),
    ],
)
def test_bad_times_are_usage_errors(
    wechat_kf: Invoker, fake: FakeWeChat, since: str, until: str | None, message: str
) -> None:
    result = wechat_kf(
        "records", "export", "--since", since, *(["--until", until] if until else [])
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert not fake.requests


def test_failed_export_leaves_no_file(wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path) -> None:
    seed(fake)
    fake.inject("/customservice/msgrecord/getmsglist", errcode=65416, times=1)
    output = tmp_path / "may.jsonl"
    result = wechat_kf(
        "records", "export", "--since", str(T0), "--until", str(T0 + DAY), "-o", str(output)
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(
        "error: errcode 65416 (invalid parameters) rid: "
    )
    assert list(tmp_path.iterdir()) == []


def test_csv_cells_never_run_as_spreadsheet_formulas(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    hostile = ['=HYPERLINK("http://evil","x")', "+1+1", "-2", "@SUM(A1)", "正常 = fine"]
    for n, text in enumerate(hostile):
        fake.add_record(f"o_{n}", 2003, text, "a@gh", time=T0 + n)
    csv_path, jsonl_path = tmp_path / "r.csv", tmp_path / "r.jsonl"
    for path in (csv_path, jsonl_path):
        result = wechat_kf(
            "records", "export", "--since", str(T0), "--until", str(T0 + 60), "-o", str(path)
        )
        assert result.exit_code == 0, result.output
    with csv_path.open(encoding="utf-8", newline="") as stream:
        texts = [row["text"] for row in csv.DictReader(stream)]
    assert texts == ["'" + t for t in hostile[:4]] + [hostile[4]]
    # JSONL is data, not a spreadsheet: kept exactly as WeChat sent it.
    assert [json.loads(line)["text"] for line in jsonl_path.read_text().splitlines()] == hostile


def test_a_reader_that_stops_early_ends_the_export_quietly(
    wechat_kf: Invoker, fake: FakeWeChat
) -> None:
    # `wechat-kf records export ... | head -n 1`: the pipe closes with most records unwritten.
    for n in range(3000):
        fake.add_record(f"o_{n}", 2001, "消息" * 20, time=T0 + n)
    process = subprocess.Popen(
        [sys.executable, "-m", "wechat_kf.cli", "records", "export",
         "--since", str(T0), "--until", str(T0 + DAY)],
        env={**os.environ, **wechat_kf.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what head does after its line
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == 141  # 128 + SIGPIPE, as Unix tools end
    assert json.loads(first)["openid"] == "o_0"
    # No "error: Broken pipe", no "Exception ignored": only the progress lines of a log.
    assert all(line.startswith("exporting") for line in stderr.splitlines()), stderr

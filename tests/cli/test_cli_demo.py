"""``wechat-kf demo`` (and its alias ``python -m wechat_kf.demo``): the README's first command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from wechat_kf.cli._app import cli


def run_demo(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["demo", *args], env={"COLUMNS": "120"})
    return result.exit_code, result.stdout, result.stderr


def test_demo_day_for_people(tmp_path: Path) -> None:
    code, stdout, stderr = run_demo("--users", "200", "--export-dir", str(tmp_path))
    assert code == 0, stdout + stderr
    for heading in (
        "1. Agents join",
        "2. Users write in and wait",
        "3. Agents take the sessions and reply",
        "4. A bot answers after WeChat's 5 seconds",
        "5. A notice to 200 users",
        "6. Sessions close",
        "7. The day's chat records",
    ):
        assert heading in stdout
    assert "│ 4.0 s │ WeChat gets     │ 'success' (the reply deadline)" in stdout
    assert "│ 4.0 s │ typing...       │ Typing" in stdout
    assert "│ 8.0 s │ message (AI)    │ 收到商品 7 天内可以无理由退货。" in stdout
    assert "the model ran 1 time" in stdout
    assert "alice@gh_demo" in stdout
    assert "6 users waiting" in stdout
    assert "error: errcode 45015 (outside the 48-hour response window" in stdout
    assert "failed: errcode 45015" in stdout
    assert "failed: errcode 45047" in stdout
    assert "3 connections are dropped on purpose after WeChat took the message" in stdout
    assert "unknown: (injected by the demo) connection lost" in stdout
    assert "downloaded the user's photo" in stdout
    assert "pictures: 1 upload for the label" in stdout
    assert "6 sessions closed; 0 left open" in stdout
    exported = list(tmp_path.glob("chat-records-*.jsonl"))
    assert len(exported) == 1
    assert f"records exported to {exported[0]}" in stdout
    rows = [json.loads(line) for line in exported[0].read_text(encoding="utf-8").splitlines()]
    events = {row["event"] for row in rows}
    assert {"SESSION_STARTED_BY_AGENT", "AGENT_SENT_MESSAGE", "SESSION_CLOSED"} <= events
    assert any(row["text"] == "满意" for row in rows)
    assert "Done in " in stdout


def test_demo_full_size_json_summary(tmp_path: Path) -> None:
    code, stdout, _ = run_demo("--json", "--export-dir", str(tmp_path))
    assert code == 0
    report = json.loads(stdout)
    bulk = report["bulk"]
    assert bulk["total"] == 3000
    assert (bulk["sent"], bulk["failed"], bulk["unknown"]) == (2637, 360, 3)
    assert [r["error"].split(")")[0] for r in bulk["unknown_by_reason"]] == [
        "(injected by the demo"
    ]
    assert [(r["errcode"], r["count"]) for r in bulk["failed_by_reason"]] == [
        (45015, 300),
        (45047, 60),
    ]
    assert report["token_fetches"] == 1
    timeline = [(at, what) for at, what, _ in report["bot"]["timeline"]]
    assert timeline == [
        (0.0, "the user writes"),
        (4.0, "WeChat gets"),  # success, at the deadline: WeChat stops waiting
        (4.0, "typing..."),  # while the model thinks
        (5.0, "WeChat retries"),  # answered success: the model does not run twice
        (8.0, "message (AI)"),
        (8.0, "message (AI)"),
        (8.0, "message (AI)"),
    ]
    assert report["bot"]["model_runs"] == 1
    assert report["media"]["uploads"] == 1  # the label, sent as a picture and a card's picture
    assert report["records"]["count"] == len(
        Path(report["records"]["file"]).read_text(encoding="utf-8").splitlines()
    )
    assert isinstance(report["seconds"], float)  # measured and shown, never asserted on
    assert report["seconds"] > 0


def test_python_m_wechat_kf_demo_without_a_terminal(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wechat_kf.demo", "--users", "50", "--export-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert done.returncode == 0, done.stderr
    assert "5. A notice to 50 users" in done.stdout
    assert "\x1b[" not in done.stdout  # no colours or cursor moves when redirected
    assert list(tmp_path.glob("chat-records-*.jsonl"))

"""Progress on stderr: a bar on a terminal, periodic lines in a log (stderr not a terminal)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from tests.cli.conftest import Invoker
from wechat_kf.cli._output import Output
from wechat_kf.testing import FakeWeChat


def log_output(clock: list[float], *, json_mode: bool = False) -> tuple[Output, io.StringIO]:
    log = io.StringIO()
    console = Console(file=log, force_terminal=False, width=200)
    assert not console.is_terminal
    output = Output(json_mode=json_mode, stderr=console, clock=lambda: clock[0], progress_every=5)
    return output, log


def test_a_line_every_few_seconds_when_stderr_is_a_log() -> None:
    clock = [1000.0]
    output, log = log_output(clock)
    with output.progress("sending", total=12) as bar:
        for _ in range(12):
            clock[0] += 1  # one item a second
            bar.advance()
    assert log.getvalue().splitlines() == [
        "sending: 0/12 (0%), 0 s",
        "sending: 5/12 (42%), 5 s",
        "sending: 10/12 (83%), 10 s",
        "sending: 12/12 (100%) in 12 s",
    ]


def test_lines_without_counts_follow_the_label() -> None:
    clock = [0.0]
    output, log = log_output(clock)
    with output.progress("exporting", total=200, counts=False) as bar:
        clock[0] = 7
        bar.update(completed=50, description="exporting: 400 records")
        clock[0] = 8
        bar.update(completed=200, description="exported: 900 records")
    assert log.getvalue().splitlines() == [
        "exporting (0%), 0 s",
        "exporting: 400 records (25%), 7 s",
        "exported: 900 records (100%) in 8 s",
    ]


def test_json_mode_prints_no_progress() -> None:
    clock = [0.0]
    output, log = log_output(clock, json_mode=True)
    with output.progress("sending", total=3) as bar:
        clock[0] = 60
        bar.advance(3)
    assert log.getvalue() == ""


def test_send_many_into_a_log_shows_progress(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = [f"o_user_{n}" for n in range(20)]
    for openid in openids:
        fake.user_says(openid)
    path = tmp_path / "u.txt"
    path.write_text("\n".join(openids), encoding="utf-8")
    result = wechat_kf("send-many", str(path), "--text", "hi")  # stderr: not a terminal
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert "sending: 0/20 (0%), 0 s" in lines
    assert any(line.startswith("sending: 20/20 (100%) in ") for line in lines)

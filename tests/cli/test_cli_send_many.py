"""``wechat-kf send-many``: recipients files, the results file, resume, exit codes, Ctrl-C."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import SEND_PATH, Invoker, interruptible
from wechat_kf.testing import FakeWeChat


def users(fake: FakeWeChat, count: int, *, silent: frozenset[int] = frozenset()) -> list[str]:
    """``count`` openids; all but the ``silent`` ones wrote in (their window is open)."""
    openids = [f"o_user_{n:04d}" for n in range(count)]
    for n, openid in enumerate(openids):
        if n not in silent:
            fake.user_says(openid)
    return openids


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a results file, run lines included."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every recipient line of a results file, ``pending`` ones included."""
    return [line for line in read_lines(path) if "run" not in line]


def read_results(path: Path) -> list[dict[str, Any]]:
    """The outcome lines, after checking each follows its ``pending`` line (write-ahead)."""
    lines = read_log(path)
    pending: set[str] = set()
    outcomes = []
    for line in lines:
        if line["status"] == "pending":
            pending.add(line["openid"])
        else:
            assert line["openid"] in pending, line
            pending.discard(line["openid"])
            outcomes.append(line)
    return outcomes


def sends_per_user(fake: FakeWeChat) -> Counter[str]:
    return Counter(request.json()["touser"] for request in fake.requests_to(SEND_PATH))


def test_text_file_partial_failure_and_results_file(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 30, silent=frozenset({3, 7}))
    recipients = write_lines(tmp_path / "users.txt", ["# members", "", *openids])
    (tmp_path / "out").mkdir()
    results = tmp_path / "out" / "results.jsonl"
    summary = wechat_kf.json(
        "send-many", str(recipients), "--text", "【通知】", "--results", str(results), code=4
    )
    assert summary["total"] == 30
    assert (summary["sent"], summary["failed"], summary["unknown"]) == (28, 2, 0)
    assert summary["failed_by_reason"] == [
        {
            "errcode": 45015,
            "error": "errcode 45015 (outside the 48-hour response window: the user must write "
            "first)",
            "count": 2,
        }
    ]
    assert summary["results_file"] == str(results)
    lines = read_results(results)
    assert len(lines) == 30
    assert {line["openid"] for line in lines} == set(openids)
    failed = [line for line in lines if line["status"] == "failed"]
    assert {line["openid"] for line in failed} == {openids[3], openids[7]}
    assert all(line["errcode"] == 45015 and " rid: " in line["error"] for line in failed)
    assert all(set(line) == {"openid", "status", "errcode", "error", "time"} for line in lines)
    assert max(sends_per_user(fake).values()) == 1
    assert fake.sent_to(openids[0])[0]["text"] == {"content": "【通知】"}


def test_human_summary_table(wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path) -> None:
    openids = users(fake, 5, silent=frozenset({0}))
    fake.add_media(media_id="M", permanent=True)
    result = wechat_kf("send-many", str(write_lines(tmp_path / "u.txt", openids)), "--image", "M")
    assert result.exit_code == 4
    assert "5 recipients, 5 to send" in result.stderr
    table = result.stdout
    assert "send-many: image" in table
    assert "sent" in table
    assert "failed: errcode 45015 (outside the 48-hour response window" in table
    assert "total" in table


def test_csv_recipients_openid_column_duplicates_and_bad_openids(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 4)
    csv_file = tmp_path / "members.csv"
    csv_file.write_text(
        "\ufeffname,OpenID,city\n"
        f'"Li, Lei",{openids[0]},北京\n'
        f"Han,{openids[1]},上海\n"
        f"Dup,{openids[0]},北京\n"
        "Bad,has space,x\n",
        encoding="utf-8",
    )
    summary = wechat_kf.json("send-many", str(csv_file), "--text", "hi", code=4)
    assert (summary["total"], summary["sent"], summary["failed"], summary["skipped"]) == (
        4,
        2,
        1,
        1,
    )
    assert summary["skipped_by_reason"] == [
        {"reason": "repeated in the recipients file", "count": 1}
    ]
    assert summary["failed_by_reason"][0]["error"].startswith("invalid openid")
    assert sends_per_user(fake) == {openids[0]: 1, openids[1]: 1}


def test_csv_without_openid_header_uses_the_first_column_and_stdin(
    wechat_kf: Invoker, fake: FakeWeChat
) -> None:
    openids = users(fake, 3)
    stdin = "".join(f"{openid},extra\n" for openid in openids)
    summary = wechat_kf.json("send-many", "-", "--text", "hi", input=stdin)
    assert summary["sent"] == 3
    text = "\n".join(openids)
    fake.add_media("voice", media_id="V", permanent=True)
    assert wechat_kf.json("send-many", "-", "--voice", "V", input=text)["sent"] == 3


def test_csv_header_without_openid_column_is_never_sent_to(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 3)
    csv_file = tmp_path / "members.csv"
    csv_file.write_text("user,name\n" + "".join(f"{o},Li\n" for o in openids), encoding="utf-8")
    result = wechat_kf("--json", "send-many", str(csv_file), "--text", "hi")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["sent"], summary["failed"]) == (3, 3, 0)
    assert set(sends_per_user(fake)) == set(openids)  # not "user"
    plain = wechat_kf("send-many", str(csv_file), "--text", "hi")
    assert (
        "first row (user, name) taken as a header, not an openid (no 'openid' column): "
        "openids from column 1 ('user')"
    ) in plain.stderr


@pytest.mark.parametrize(
    ("first_row", "header"),
    [
        ("用户,备注", True),  # cannot be an openid
        ("user id", True),
        ("Open_ID", True),  # names the column
        ("o_user_9", True),  # another length than every openid below it
        ("o_user_0009", False),  # an openid like the others: sent to
    ],
)
def test_first_row_header_detection(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path, first_row: str, header: bool
) -> None:
    openids = users(fake, 3)
    fake.user_says("o_user_0009")
    fake.user_says("o_user_9")
    path = write_lines(tmp_path / "u.txt", [first_row, *openids])
    summary = wechat_kf.json("send-many", str(path), "--text", "hi")
    expected = set(openids) if header else {*openids, first_row}
    assert set(sends_per_user(fake)) == expected
    assert summary["total"] == len(expected)


def test_csv_quoted_fields_may_hold_newlines_and_empty_cells_are_counted(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 3)
    csv_file = tmp_path / "members.csv"
    csv_file.write_text(
        "name,openid,note\n"
        f'"Li\nLei",{openids[0]},"line one\nline two, with a comma"\n'
        f'Han,"{openids[1]}",x\n'
        "Nobody,,x\n"
        "Short\n"
        f'"Wang\r\nFang",{openids[2]},\n',
        encoding="utf-8",
        newline="",
    )
    summary = wechat_kf.json("send-many", str(csv_file), "--text", "hi")
    assert sends_per_user(fake) == Counter(openids)
    assert (summary["total"], summary["sent"], summary["skipped"]) == (5, 3, 2)
    assert summary["skipped_by_reason"] == [
        {"reason": "no openid in the row (recipients file)", "count": 2}
    ]


def test_recipients_and_message_cannot_both_come_from_stdin(wechat_kf: Invoker) -> None:
    result = wechat_kf("send-many", "-", "--json-file", "-", input="o_1\n")
    assert result.exit_code == 2
    assert "RECIPIENTS and --json-file cannot both be read from stdin" in result.stderr


def test_rerun_skips_sent_and_retries_failed(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 12, silent=frozenset({2, 5}))
    recipients = str(write_lines(tmp_path / "u.txt", openids))
    results = tmp_path / "r.jsonl"
    args = ("send-many", recipients, "--text", "hi", "--results", str(results))
    first = wechat_kf.json(*args, code=4)
    assert (first["sent"], first["failed"]) == (10, 2)

    fake.user_says(openids[2])  # one of them writes in meanwhile
    before = len(fake.requests_to(SEND_PATH))
    second = wechat_kf.json(*args, code=4)
    assert (second["sent"], second["failed"], second["skipped"]) == (1, 1, 10)
    assert second["skipped_by_reason"] == [{"reason": "already sent (results file)", "count": 10}]
    retried = [r.json()["touser"] for r in fake.requests_to(SEND_PATH)[before:]]
    assert sorted(retried) == [openids[2], openids[5]]

    fake.user_says(openids[5])
    third = wechat_kf.json(*args)
    assert (third["sent"], third["skipped"]) == (1, 11)
    # openids[2] and [5] were tried until accepted; everyone got the message exactly once.
    assert sends_per_user(fake) == Counter({**Counter(openids), openids[2]: 2, openids[5]: 3})
    delivered = Counter(openid for openid in openids for _ in fake.sent_to(openid))
    assert delivered == Counter(openids)

    fourth = wechat_kf.json(*args)
    assert (fourth["sent"], fourth["skipped"]) == (0, 12)


def test_unknown_outcomes_are_never_resent_silently(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 6)
    recipients = str(write_lines(tmp_path / "u.txt", openids))
    results = tmp_path / "r.jsonl"
    args = ("send-many", recipients, "--text", "hi", "--results", str(results))
    # Two connections drop after WeChat took the message.
    fake.inject(SEND_PATH, reset=True, processed=True, times=2)
    first = wechat_kf.json(*args, "--max-concurrency", "1", code=4)
    assert (first["sent"], first["unknown"]) == (4, 2)
    unknown = [r["openid"] for r in read_results(results) if r["status"] == "unknown"]
    assert unknown == openids[:2]
    assert first["unknown_by_reason"][0]["error"].startswith("connection lost: ")

    before = len(fake.requests_to(SEND_PATH))
    second = wechat_kf.json(*args)
    assert second["skipped_by_reason"] == [
        {"reason": "already sent (results file)", "count": 4},
        {"reason": "outcome unknown earlier, not sent again (see --retry-unknown)", "count": 2},
    ]
    assert len(fake.requests_to(SEND_PATH)) == before

    third = wechat_kf.json(*args, "--retry-unknown")
    assert (third["sent"], third["skipped"]) == (2, 4)
    assert [r.json()["touser"] for r in fake.requests_to(SEND_PATH)[before:]] == openids[:2]


def test_a_stop_error_ends_the_run_exit_1_and_the_rest_is_sent_later(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 20)
    recipients = str(write_lines(tmp_path / "u.txt", openids))
    results = tmp_path / "r.jsonl"
    args = ("send-many", recipients, "--text", "hi", "--results", str(results))
    fake.inject(SEND_PATH, errcode=45009, errmsg="reach max api daily quota limit rid: 1a2b")
    result = wechat_kf(*args, "--max-concurrency", "1")
    assert result.exit_code == 1
    assert "error: stopped early: errcode 45009 (daily API quota reached" in result.stderr
    assert "rid: 1a2b" in result.stderr
    lines = read_results(results)
    assert [line["status"] for line in lines] == ["failed"]  # the rest was never handed over
    assert "skipped: not attempted: stopped by errcode 45009 (daily API quota" in result.stdout

    summary = wechat_kf.json(*args)
    assert summary["sent"] == 20
    assert Counter(openid for openid in openids for _ in fake.sent_to(openid)) == Counter(openids)


def test_results_file_of_another_message_is_refused(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 4)
    recipients = str(write_lines(tmp_path / "u.txt", openids))
    results = tmp_path / "notice.jsonl"
    first = wechat_kf.json(
        "send-many", recipients, "--text", "今天的通知", "--results", str(results)
    )
    assert first["sent"] == 4
    (run,) = [line for line in read_lines(results) if "run" in line]
    assert run["fingerprint"].startswith("sha256:")
    assert (run["message"], run["continues"]) == ("text: 今天的通知", False)
    recorded = results.read_bytes()
    sends = len(fake.requests_to(SEND_PATH))

    # Tomorrow's notice with today's file: refused, before any request, and says what to do.
    for other in (["--text", "明天的通知"], ["--text", "今天的通知", "--ai-generated"]):
        result = wechat_kf("send-many", recipients, *other, "--results", str(results))
        assert result.exit_code == 2, result.output
        assert f"{results} records a run of another message (text: 今天的通知)" in result.stderr
        assert f"new results file (--results {tmp_path / 'notice-2.jsonl'})" in result.stderr
        assert "or add --new-run" in result.stderr
    assert len(fake.requests_to(SEND_PATH)) == sends
    assert results.read_bytes() == recorded

    # The same message written another way (WeChat JSON, other key order) resumes.
    message = tmp_path / "m.json"
    message.write_text('{"text": {"content": "今天的通知"}, "msgtype": "text"}', encoding="utf-8")
    again = wechat_kf.json(
        "send-many", recipients, "--json-file", str(message), "--results", str(results)
    )
    assert (again["sent"], again["skipped"]) == (0, 4)


def test_new_run_in_the_same_results_file(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 3)
    recipients = str(write_lines(tmp_path / "u.txt", openids))
    results = str(tmp_path / "notice.jsonl")
    assert (
        wechat_kf.json("send-many", recipients, "--text", "一", "--results", results)["sent"] == 3
    )
    second = wechat_kf.json(
        "send-many", recipients, "--text", "二", "--results", results, "--new-run"
    )
    assert second["sent"] == 3  # the first run's lines no longer skip anyone
    assert [m["text"]["content"] for m in fake.sent_to(openids[0])] == ["一", "二"]
    assert (
        wechat_kf.json("send-many", recipients, "--text", "二", "--results", results)["skipped"]
        == 3
    )
    assert wechat_kf("send-many", recipients, "--text", "一", "--results", results).exit_code == 2
    lines = read_lines(Path(results))
    assert [line["message"] for line in lines if "run" in line] == ["text: 一", "text: 二"]
    assert len([line for line in lines if line.get("status") == "sent"]) == 6  # history kept

    result = wechat_kf("send-many", recipients, "--text", "三", "--new-run")
    assert result.exit_code == 2
    assert "--new-run starts a new run in a --results file" in result.stderr


def test_results_into_a_missing_directory_is_refused(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 2)
    missing = tmp_path / "typo" / "r.jsonl"
    result = wechat_kf(
        "send-many", str(write_lines(tmp_path / "u.txt", openids)), "--text", "hi",
        "--results", str(missing),
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"the directory {missing.parent} does not exist (create it first" in result.stderr
    assert not missing.parent.exists()
    assert not fake.requests


def test_results_file_in_use_by_another_run(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 2)
    results = tmp_path / "r.jsonl"
    with results.open("a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = wechat_kf(
            "send-many",
            str(write_lines(tmp_path / "u.txt", openids)),
            "--text",
            "hi",
            "--results",
            str(results),
        )
    assert result.exit_code == 2
    assert "is in use by another send-many run" in result.stderr
    assert not fake.requests_to(SEND_PATH)


def test_torn_last_line_from_an_interrupted_write(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 3)
    results = tmp_path / "r.jsonl"
    sent = json.dumps({"openid": openids[0], "status": "sent", "errcode": None, "error": None})
    results.write_text(sent + '\n{"openid": "o_user_0001", "sta', encoding="utf-8")
    result = wechat_kf(
        "--json",
        "send-many",
        str(write_lines(tmp_path / "u.txt", openids)),
        "--text",
        "hi",
        "--results",
        str(results),
    )
    assert result.exit_code == 0, result.output
    assert "1 unreadable line(s)" in result.stderr
    assert json.loads(result.stdout)["sent"] == 2
    lines = results.read_text(encoding="utf-8").splitlines()
    assert lines[1] == '{"openid": "o_user_0001", "sta'
    run, *after = [json.loads(line) for line in lines[2:]]
    # Written before fingerprints: adopted (its lines still count), and it says so.
    assert (run["run"], run["continues"]) == ("send-many", True)
    assert "does not say which message it recorded" in result.stderr
    assert sorted(line["openid"] for line in after if line["status"] == "sent") == openids[1:]


def test_rate_limits_the_pace(wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path) -> None:
    openids = users(fake, 6)
    started = time.perf_counter()
    summary = wechat_kf.json(
        "send-many", str(write_lines(tmp_path / "u.txt", openids)), "--text", "hi", "--rate", "20"
    )
    assert summary["sent"] == 6
    assert time.perf_counter() - started >= 0.2


# --------------------------------------------------------------------------- Ctrl-C


def start_send_many(
    wechat_kf: Invoker, recipients: Path, results: Path, concurrency: int, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "wechat_kf.cli", "send-many", str(recipients),
            "--text", "通知", "--results", str(results), "--max-concurrency", str(concurrency),
            *extra,
        ],
        env={**os.environ, **wechat_kf.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )  # fmt: skip


def wait_for_outcomes(path: Path, count: int, process: subprocess.Popen[str]) -> None:
    """Wait until the results file holds ``count`` outcomes (beside the ``pending`` lines)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if sum('"status": "pending"' not in line for line in lines) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("the send-many run made no progress")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_gracefully_and_a_rerun_sends_only_the_rest(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path, signum: signal.Signals
) -> None:
    openids = users(fake, 200)
    recipients = write_lines(tmp_path / "u.txt", openids)
    results = tmp_path / "r.jsonl"
    fake.inject(SEND_PATH, delay=0.05, times=1000)  # a slow WeChat: about 80 sends/s
    process = start_send_many(wechat_kf, recipients, results, concurrency=4)
    wait_for_outcomes(results, 10, process)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "stopping: waiting for the sends in flight" in stderr
    assert "interrupted: run the same command again to send to the rest" in stderr
    assert "skipped: not attempted: stopped by Ctrl-C" in stdout
    lines = read_results(results)
    assert 10 <= len(lines) < 200
    assert {line["status"] for line in lines} == {"sent"}  # in-flight sends finished
    first_run = {line["openid"] for line in lines}
    assert set(sends_per_user(fake)) == first_run

    fake.clear_faults()
    summary = wechat_kf.json(
        "send-many", str(recipients), "--text", "通知", "--results", str(results)
    )
    assert summary["sent"] == 200 - len(first_run)
    assert summary["skipped"] == len(first_run)
    assert sends_per_user(fake) == Counter(openids)  # everyone exactly once


def test_after_ctrl_c_one_cause_has_one_label(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    # Workers waiting for a rate slot hold a recipient each: the SDK reports those skipped
    # (stopped), the CLI those it never handed over: both are "stopped by Ctrl-C".
    openids = users(fake, 100)
    recipients = write_lines(tmp_path / "u.txt", openids)
    results = tmp_path / "r.jsonl"
    process = start_send_many(wechat_kf, recipients, results, 4, "--rate", "5")
    wait_for_outcomes(results, 3, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    skipped = [line for line in read_results(results) if line["status"] == "skipped"]
    assert skipped  # taken by the SDK, then stopped before their turn
    assert {line["error"] for line in skipped} == {"not attempted: stopped by Ctrl-C"}
    labels = [line for line in stdout.splitlines() if "skipped:" in line]
    assert len(labels) == 1, stdout
    assert "skipped: not attempted: stopped by Ctrl-C" in labels[0]


def test_sdk_outcomes_get_the_cli_labels_of_their_cause() -> None:
    from wechat_kf import DailyQuotaError, SendCancelledError, SendInterruptedError
    from wechat_kf.bulk import SendResult, SendStatus
    from wechat_kf.cli._bulk import INTERRUPTED_ERROR, outcome_of

    def error_of(status: SendStatus, error: Any) -> str | None:
        return outcome_of(SendResult(index=0, openid="o", status=status, error=error)).error

    stopped = SendCancelledError("the bulk send was stopped")
    assert error_of(SendStatus.SKIPPED, stopped) == "not attempted: stopped by Ctrl-C"
    quota = DailyQuotaError(45009, "reach max api daily quota limit")
    assert error_of(SendStatus.SKIPPED, quota).startswith(  # type: ignore[union-attr]
        "not attempted: stopped by errcode 45009 (daily API quota"
    )
    in_flight = SendInterruptedError("cancelled with the request in flight for more than 5 s")
    assert error_of(SendStatus.UNKNOWN, in_flight) == INTERRUPTED_ERROR


def test_second_ctrl_c_abandons_in_flight_sends_as_unknown(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 100)
    recipients = write_lines(tmp_path / "u.txt", openids)
    results = tmp_path / "r.jsonl"
    fake.inject(SEND_PATH, delay=0.02, times=10)  # ten quick sends...
    fake.inject(SEND_PATH, delay=2.0, times=1000)  # ...then WeChat hangs
    process = start_send_many(wechat_kf, recipients, results, concurrency=3)
    wait_for_outcomes(results, 8, process)
    deadline = time.monotonic() + 10
    while len(fake.requests_to(SEND_PATH)) < 13 and time.monotonic() < deadline:
        time.sleep(0.01)  # three requests hang in flight
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "abandoning the sends in flight: they are recorded as unknown" in stderr
    lines = read_results(results)
    statuses = Counter(line["status"] for line in lines)
    assert statuses["unknown"] == 3
    assert statuses["sent"] == len(lines) - 3
    unknown = {line["openid"] for line in lines if line["status"] == "unknown"}
    assert all(
        line["error"] == "interrupted before WeChat answered: the message may have reached the user"
        for line in lines
        if line["status"] == "unknown"
    )
    assert unknown <= set(sends_per_user(fake))  # they did reach the fake

    fake.clear_faults()
    summary = wechat_kf.json(
        "send-many", str(recipients), "--text", "通知", "--results", str(results), code=0
    )
    assert summary["sent"] == 100 - len(lines)
    per_user = sends_per_user(fake)
    assert max(per_user.values()) == 1  # never twice
    assert set(per_user) == set(openids)


def test_a_killed_run_never_causes_a_second_message(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path
) -> None:
    openids = users(fake, 100)
    recipients = write_lines(tmp_path / "u.txt", openids)
    results = tmp_path / "r.jsonl"
    fake.inject(SEND_PATH, delay=0.02, times=10)
    fake.inject(SEND_PATH, delay=2.0, times=1000)
    process = start_send_many(wechat_kf, recipients, results, concurrency=3)
    wait_for_outcomes(results, 10, process)
    deadline = time.monotonic() + 10
    while len(fake.requests_to(SEND_PATH)) < 13 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.kill()  # no cleanup at all: only the write-ahead "pending" lines tell
    process.communicate(timeout=30)
    log = read_log(results)
    outcomes = read_results(results)
    assert [line["status"] for line in outcomes] == ["sent"] * 10
    cut_off = {line["openid"] for line in log} - {line["openid"] for line in outcomes}
    assert len(cut_off) == 3
    assert cut_off <= set(sends_per_user(fake))  # they did reach WeChat

    fake.clear_faults()
    summary = wechat_kf.json(
        "send-many", str(recipients), "--text", "通知", "--results", str(results)
    )
    assert summary["sent"] == 100 - 13
    assert {
        "reason": "outcome unknown earlier, not sent again (see --retry-unknown)",
        "count": 3,
    } in summary["skipped_by_reason"]
    assert sends_per_user(fake) == Counter(openids)  # everyone exactly once


def test_results_are_read_only_under_the_lock(
    wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run that read the file before locking could miss what a concurrent run recorded since.
    from wechat_kf.cli._results import ResultsFile

    read_while_locked: list[bool] = []
    original = ResultsFile.latest

    def latest(self: ResultsFile) -> dict[str, str]:
        read_while_locked.append(self._file is not None)
        return original(self)

    monkeypatch.setattr(ResultsFile, "latest", latest)
    openids = users(fake, 2)
    result = wechat_kf(
        "send-many",
        str(write_lines(tmp_path / "u.txt", openids)),
        "--text",
        "hi",
        "--results",
        str(tmp_path / "r.jsonl"),
    )
    assert result.exit_code == 0
    assert read_while_locked == [True]

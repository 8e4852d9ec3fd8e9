"""Global behaviour: help, credentials, error lines, exit codes, --json errors, --debug."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tests.cli.conftest import SEND_PATH, Invoker
from wechat_kf.cli import INSTALL_HINT
from wechat_kf.cli._app import cli
from wechat_kf.testing import FakeWeChat


def test_help_lists_every_command_and_the_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("agents", "send", "send-many", "sessions", "records", "demo"):
        assert command in result.output
    assert "WECHAT_APPID" in result.output
    assert "130  interrupted" in result.output
    for group, commands in {
        "agents": ("list", "online", "add", "update", "delete", "invite", "avatar"),
        "sessions": ("get", "list", "waiting", "create", "close"),
        "records": ("export",),
    }.items():
        output = CliRunner().invoke(cli, [group, "--help"]).output
        assert all(name in output for name in commands), output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("wechat-kf, version ")


def test_missing_credentials_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        cli, ["agents", "list"], env={"WECHAT_APPID": None, "WECHAT_SECRET": None}
    )
    assert result.exit_code == 2
    assert "credentials missing: set WECHAT_APPID (or --appid) and WECHAT_SECRET" in result.stderr


def test_credentials_from_options(wechat_kf: Invoker, fake: FakeWeChat) -> None:
    result = wechat_kf(
        "--appid", fake.appid, "--secret", fake.secret, "agents", "list",
        env={"WECHAT_APPID": None, "WECHAT_SECRET": None},
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_wechat_refusal_is_one_line_with_errcode_meaning_and_rid(wechat_kf: Invoker) -> None:
    result = wechat_kf("send", "o_never_wrote", "--text", "hi")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "error: errcode 45015 (outside the 48-hour response window: the user must write first) "
        "rid: "
    )
    assert "Traceback" not in result.output


def test_json_error_object(wechat_kf: Invoker) -> None:
    data = wechat_kf.json("send", "o_never_wrote", "--text", "hi", code=1)
    error = data["error"]
    assert data["ok"] is False
    assert error["type"] == "ResponseWindowError"
    assert error["errcode"] == 45015
    assert error["exit_code"] == 1
    assert error["rid"]
    assert error["rid"] in error["errmsg"]
    assert error["hint"] == "outside the 48-hour response window: the user must write first"


def test_json_flag_after_the_command_too(wechat_kf: Invoker) -> None:
    result = wechat_kf("agents", "list", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_wrong_secret_never_echoed(wechat_kf: Invoker) -> None:
    secret = "a-wrong-secret-1234567890"
    for debug in ((), ("--debug",)):
        result = wechat_kf(*debug, "agents", "list", env={"WECHAT_SECRET": secret})
        assert result.exit_code == 1
        assert "error: errcode 40125 (invalid appsecret" in result.stderr
        assert secret not in result.output


def test_debug_shows_the_traceback_without_the_token(wechat_kf: Invoker, fake: FakeWeChat) -> None:
    result = wechat_kf("--debug", "send", "o_never_wrote", "--text", "hi")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ResponseWindowError" in result.stderr
    assert "POST /cgi-bin/message/custom/send: HTTP 200 in" in result.stderr  # the HTTP log
    for token in fake.tokens:
        assert token not in result.output
    assert fake.secret not in result.output


def test_network_failure_exits_3() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(
        cli,
        ["--timeout", "2", "agents", "list"],
        env={
            "WECHAT_APPID": "wx0123456789abcdef",
            "WECHAT_SECRET": "s",
            "WECHAT_BASE_URL": f"http://127.0.0.1:{port}",
        },
    )
    assert result.exit_code == 3
    assert result.stderr.startswith("error: no access token (could not connect: ")
    assert "nothing was sent" in result.stderr


def test_http_5xx_and_malformed_answers_exit_3(wechat_kf: Invoker, fake: FakeWeChat) -> None:
    fake.inject("/cgi-bin/customservice/getkflist", status=502, times=3)
    result = wechat_kf("agents", "list")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: HTTP 502 from GET /cgi-bin/customservice/getkflist")
    fake.inject("/cgi-bin/customservice/getkflist", malformed=b"<html>", times=3)
    result = wechat_kf("agents", "list")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: unexpected answer: ")


def test_bad_base_url_is_a_usage_error(wechat_kf: Invoker) -> None:
    result = wechat_kf("--base-url", "ftp://example.com", "agents", "list")
    assert result.exit_code == 2
    assert "base_url must start with https:// or http://" in result.stderr


def test_send_timeout_is_unknown_not_retried(wechat_kf: Invoker, fake: FakeWeChat) -> None:
    fake.user_says("o_1")
    fake.inject(SEND_PATH, delay=1.0)
    result = wechat_kf("--timeout", "0.2", "send", "o_1", "--text", "hi")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: no answer in time: ")
    assert "(it may have reached WeChat)" in result.stderr
    assert len(fake.requests_to(SEND_PATH)) == 1


def test_without_the_cli_extra_a_one_line_hint() -> None:
    code = (
        "import sys; sys.modules['rich'] = None\nfrom wechat_kf.cli import main\nmain(['demo'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip() == INSTALL_HINT
    assert "pip install 'wechat_kf[cli]'" in INSTALL_HINT


def test_the_sdk_does_not_need_click_or_rich() -> None:
    code = (
        "import sys; sys.modules['click'] = sys.modules['rich'] = None\n"
        "import wechat_kf, wechat_kf.bulk, wechat_kf.testing, wechat_kf.demo\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("transport", ["anyio", "aiohttp", "httpx"])
def test_every_transport(wechat_kf: Invoker, fake: FakeWeChat, transport: str) -> None:
    fake.add_agent("a@gh", "Ann")
    data = wechat_kf.json("--transport", transport, "agents", "list")
    assert [a["kf_account"] for a in data] == ["a@gh"]

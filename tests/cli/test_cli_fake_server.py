"""``wechat-kf fake-server``: a real process serving the seeded fake, used by the CLI and httpx."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import interruptible
from wechat_kf.testing import FakeWeChat

SERVE = [sys.executable, "-m", "wechat_kf.cli"]


@contextmanager
def fake_server(*args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """Start ``wechat-kf [ARGS]``; yield it with its stdout lines up to the blank line after
    the export line (or its JSON line); always stop it."""
    process = subprocess.Popen(
        [*SERVE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        preexec_fn=interruptible,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("{") or line.strip().startswith("wechat-kf agents list"):
                break
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def stop(process: subprocess.Popen[str], how: signal.Signals = signal.SIGINT) -> tuple[int, str]:
    """Stop it as Ctrl-C (or SIGTERM) would; its exit status and stderr."""
    process.send_signal(how)
    _, stderr = process.communicate(timeout=20)
    return process.returncode, stderr


def exported(lines: list[str]) -> dict[str, str]:
    """The variables of the ``export ...`` line it prints."""
    (line,) = [line for line in lines if line.strip().startswith("export ")]
    return dict(item.split("=", 1) for item in line.split()[1:])


def test_serves_the_demo_seed_to_the_cli_and_to_httpx_until_ctrl_c() -> None:
    with fake_server("fake-server", "--port", "0", "--seed", "demo") as (process, lines):
        env = exported(lines)
        base_url = env["WECHAT_BASE_URL"]
        assert base_url.startswith("http://127.0.0.1:")
        assert f"  base URL  {base_url}" in lines
        assert f"  appid     {FakeWeChat().appid}" in lines
        assert f"  secret    {FakeWeChat().secret}" in lines
        assert env["WECHAT_APPID"] == FakeWeChat().appid

        agents = subprocess.run(
            [*SERVE, "--json", "agents", "list"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        accounts = [agent["kf_account"] for agent in json.loads(agents.stdout)]
        assert accounts == ["alice@gh_demo", "bob@gh_demo", "carol@gh_demo"]

        with httpx.Client(base_url=base_url) as http:  # what curl would do
            token = http.post(
                "/cgi-bin/stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": env["WECHAT_APPID"],
                    "secret": env["WECHAT_SECRET"],
                },
            ).json()["access_token"]
            waiting = http.get(
                "/customservice/kfsession/getwaitcase", params={"access_token": token}
            ).json()
            assert waiting["count"] == 6
            sent = http.post(
                "/cgi-bin/message/custom/send",
                params={"access_token": token},
                content=json.dumps(
                    {"touser": "o_member_009", "msgtype": "text", "text": {"content": "hi"}}
                ),
            ).json()
            assert sent["errcode"] == 45015  # every tenth member never wrote in
        code, stderr = stop(process)
    assert code == 0
    log = stderr.splitlines()
    assert any(line.endswith("GET /cgi-bin/customservice/getkflist -> ok") for line in log)
    assert any(line.endswith("POST /cgi-bin/message/custom/send -> errcode 45015") for line in log)
    assert log[-1] == "fake-server: stopped"
    assert "access_token" not in stderr  # the log names paths, never a token


def test_json_announcement_empty_seed_quiet_and_sigterm() -> None:
    with fake_server("--json", "fake-server", "--port", "0", "--seed", "empty", "--quiet") as (
        process,
        lines,
    ):
        info = json.loads(lines[-1])
        assert info["seed"] == "empty"
        assert (info["appid"], info["secret"]) == (FakeWeChat().appid, FakeWeChat().secret)
        agents = subprocess.run(
            [*SERVE, "--json", "agents", "list"],
            env={
                **os.environ,
                "WECHAT_BASE_URL": info["base_url"],
                "WECHAT_APPID": info["appid"],
                "WECHAT_SECRET": info["secret"],
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(agents.stdout) == []
        code, stderr = stop(process, signal.SIGTERM)
    assert code == 0
    assert stderr == ""  # --quiet: no request log; --json: no closing note


def test_a_port_in_use_is_a_usage_error() -> None:
    with FakeWeChat().serve() as taken:
        done = subprocess.run(
            [*SERVE, "fake-server", "--port", str(taken.port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{taken.port}" in done.stderr
    assert "--port 0 picks a free one" in done.stderr


@pytest.mark.parametrize("seed", ["demo", "empty"])
def test_help_lists_the_seeds(seed: str) -> None:
    done = subprocess.run(
        [*SERVE, "fake-server", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert seed in done.stdout
    assert "Ctrl-C" in done.stdout


def test_the_getting_started_page_shows_what_it_prints() -> None:
    page = (Path(__file__).parents[2] / "docs" / "getting-started.md").read_text(encoding="utf-8")
    block = re.search(
        r"^```text\n\$ wechat-kf fake-server --seed demo\n(.*?)^```", page, re.M | re.S
    )
    assert block, "the page shows no fake-server session"
    with fake_server("fake-server", "--port", "0", "--seed", "demo", "--quiet") as (process, lines):
        port = exported(lines)["WECHAT_BASE_URL"].rpartition(":")[2]
        stop(process)
    printed = "\n".join(lines).replace(f":{port}", ":8080")  # the default port, as documented
    assert printed == block.group(1).rstrip("\n")

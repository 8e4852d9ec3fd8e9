"""Fixtures for the command-line tests: the fake WeChat on a loopback port and a CLI runner.

Every command runs end to end: click parses the arguments, the SDK talks real HTTP to
``FakeWeChat().serve()`` through ``--base-url`` (here the ``WECHAT_BASE_URL`` variable), with
the fake's appid and secret in ``WECHAT_APPID``/``WECHAT_SECRET``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from click.testing import CliRunner, Result

from wechat_kf.cli._app import cli
from wechat_kf.testing import FakeServer, FakeWeChat

SEND_PATH = "/cgi-bin/message/custom/send"


def interruptible() -> None:
    """``preexec_fn`` of a command a test stops with SIGINT: Ctrl-C at its default.

    A test run started in the background (``pytest &``, ``nohup``, some CI runners) ignores
    SIGINT, and a child inherits that: Python then installs no KeyboardInterrupt handler, and
    the command would never see the test's Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def server(fake: FakeWeChat) -> Iterator[FakeServer]:
    with fake.serve() as served:
        yield served


def cli_env(fake: FakeWeChat, server: FakeServer) -> dict[str, str]:
    """The environment a command needs to reach the fake (wide tables: no wrapping)."""
    return {
        "WECHAT_APPID": fake.appid,
        "WECHAT_SECRET": fake.secret,
        "WECHAT_BASE_URL": server.base_url,
        "COLUMNS": "200",
    }


class Invoker:
    """Runs ``wechat-kf ARGS`` in-process against the served fake."""

    def __init__(self, fake: FakeWeChat, server: FakeServer) -> None:
        self.fake = fake
        self.server = server
        self.env = cli_env(fake, server)

    def __call__(
        self, *args: str, input: str | None = None, env: Mapping[str, str | None] | None = None
    ) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli, list(args), input=input, env={**self.env, **(env or {})}, catch_exceptions=False
        )

    def json(self, *args: str, input: str | None = None, code: int = 0) -> Any:
        """Run with ``--json``; check the exit code and return the parsed stdout."""
        result = self("--json", *args, input=input)
        assert result.exit_code == code, result.output
        return json.loads(result.stdout)

    def subprocess(
        self, *args: str, input: str | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m wechat_kf.cli ARGS`` in a child process."""
        return subprocess.run(
            [sys.executable, "-m", "wechat_kf.cli", *args],
            input=input,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            **kwargs,
        )


@pytest.fixture
def wechat_kf(fake: FakeWeChat, server: FakeServer) -> Invoker:
    """``wechat_kf("agents", "list")``: run a command against the fake on loopback."""
    return Invoker(fake, server)

"""``wechat-kf fake-server``: the fake WeChat on a loopback port, for anything to talk to.

It serves :class:`~wechat_kf.testing.FakeWeChat` (real HTTP, WeChat's rules, in memory) with a
seeded world (:mod:`wechat_kf.cli._seeds`), prints where it is and the appid and secret it
accepts, logs each request on stderr, and runs until Ctrl-C (or SIGTERM). Point this CLI, curl,
the documentation's examples or your own service at it with ``WECHAT_BASE_URL``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import click

from wechat_kf.cli._context import APPID_ENV, SECRET_ENV, Settings, common_options, pass_settings
from wechat_kf.cli._seeds import SEEDS, describe, seed
from wechat_kf.testing import FakeReply, FakeWeChat

__all__ = ["fake_server"]


class _LoggedFake(FakeWeChat):
    """A fake that writes one line per request on stderr: time, method, path, outcome."""

    def handle(
        self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> FakeReply:
        reply = super().handle(method, path, raw_query, headers, body)
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {method} {path} -> {_outcome(reply)}\n")
        sys.stderr.flush()
        return reply


def _outcome(reply: FakeReply) -> str:
    if reply.reset or reply.connect_error:
        return "connection dropped"
    if reply.status != 200:
        return f"HTTP {reply.status}"
    try:
        errcode = json.loads(reply.body).get("errcode", 0)
    except (ValueError, AttributeError):
        return "malformed body"
    return "ok" if errcode == 0 else f"errcode {errcode}"


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


@click.command("fake-server", short_help="Serve the fake WeChat on a loopback port.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="TCP port (0 picks a free one).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (keep it loopback: the fake's secret is printed).",
)
@click.option(
    "--seed",
    "seed_name",
    type=click.Choice(sorted(SEEDS)),
    default="demo",
    show_default=True,
    help="The world it starts with: demo (agents, waiting users, members) or empty.",
)
@click.option("--quiet", is_flag=True, help="Do not log each request on stderr.")
@common_options
@pass_settings
def fake_server(settings: Settings, port: int, host: str, seed_name: str, quiet: bool) -> None:
    """Serve the fake WeChat on HOST:PORT with seeded data until Ctrl-C.

    Prints the base URL and the appid and secret it accepts (with --json: one JSON object),
    then logs each request on stderr. In another terminal, paste the export line it prints and
    try `wechat-kf agents list`, curl, or your own service.
    """
    fake = seed(seed_name, FakeWeChat() if quiet else _LoggedFake())
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(fake.serve(host, port))
        except OSError as exc:
            raise click.UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (--port 0 picks a free one)"
            ) from None
        try:
            _announce(settings, server.base_url, fake, seed_name)
            _stop_on_sigterm()
            threading.Event().wait()
        except KeyboardInterrupt:
            if not settings.json_mode:
                click.echo("fake-server: stopped", err=True)


def _announce(settings: Settings, base_url: str, fake: FakeWeChat, seed_name: str) -> None:
    info: dict[str, Any] = {
        "base_url": base_url,
        "appid": fake.appid,
        "secret": fake.secret,
        "seed": seed_name,
    }
    if settings.json_mode:
        click.echo(json.dumps(info))
        return
    lines = [
        f"The fake WeChat is serving on {base_url} (seed: {seed_name}). Ctrl-C stops it.",
        "",
        f"  base URL  {base_url}",
        f"  appid     {fake.appid}",
        f"  secret    {fake.secret}",
        "",
        *(f"  {line}" for line in describe(seed_name)),
        "",
        "In another terminal:",
        f"  export WECHAT_BASE_URL={base_url} {APPID_ENV}={fake.appid} {SECRET_ENV}={fake.secret}",
        "  wechat-kf agents list",
        "",
    ]
    click.echo("\n".join(lines))

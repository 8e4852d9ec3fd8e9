"""``wechat-kf windows``: who can be messaged now, read from your application's window ledger.

The ledger lives in the Redis your application's ``RedisWindowStore`` uses (its callback
endpoint records the pushes, its sends spend the windows): ``--redis-url`` (or
``WECHAT_REDIS_URL``) points the command at it. These commands only read it, and need the
appid alone (no secret: they never call WeChat).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import click

from wechat_kf import AsyncWeChat, RedisWindowStore, WindowStatus, _defaults
from wechat_kf.cli._context import Settings, common_options, pass_settings, run
from wechat_kf.cli._output import format_time, jsonable, plural

__all__ = ["REDIS_URL_ENV", "ledger_options", "open_ledger", "windows"]

F = TypeVar("F", bound=Callable[..., Any])

#: Where the Redis URL of the window store comes from.
REDIS_URL_ENV = "WECHAT_REDIS_URL"
REDIS_PREFIX_ENV = "WECHAT_REDIS_PREFIX"


def ledger_options(command: F) -> F:
    """``--redis-url`` and ``--redis-prefix``: the window store of your application."""
    command = click.option(
        "--redis-prefix",
        envvar=REDIS_PREFIX_ENV,
        show_envvar=True,
        default=_defaults.REDIS_KEY_PREFIX,
        show_default=True,
        help="The key prefix your RedisWindowStore uses.",
    )(command)
    return click.option(
        "--redis-url",
        envvar=REDIS_URL_ENV,
        show_envvar=True,
        metavar="URL",
        help="The Redis of your application's RedisWindowStore (redis://, rediss://, unix://): "
        "the service-window ledger its callback endpoint and sends keep.",
    )(command)


@asynccontextmanager
async def open_ledger(
    settings: Settings, redis_url: str | None, prefix: str, *, secret_needed: bool = False
) -> AsyncIterator[AsyncWeChat]:
    """A client whose ``wx.windows`` reads the Redis window store at ``redis_url``."""
    if not redis_url:
        raise click.UsageError(
            f"the service-window ledger lives in your application's Redis: set {REDIS_URL_ENV} "
            "(or --redis-url); this process knows no window on its own"
        )
    async with (
        RedisWindowStore.from_url(redis_url, prefix=prefix) as store,
        settings.client(window_store=store, secret_needed=secret_needed) as wx,
    ):
        yield wx


@click.group()
def windows() -> None:
    """Service windows: who can be messaged now, how many times, until when."""


def _state(status: WindowStatus) -> str:
    if status.reachable is None:
        return "unknown (no interaction or answer seen: a send goes ahead)"
    if status.reachable:
        return "reachable"
    return f"unreachable: {(status.reason or '').replace('_', ' ')}"


@windows.command("show")
@click.argument("openid")
@ledger_options
@common_options
@pass_settings
def show(settings: Settings, openid: str, redis_url: str | None, redis_prefix: str) -> None:
    """What the ledger knows of the user OPENID: reachable, messages left, until when."""

    async def main() -> None:
        async with open_ledger(settings, redis_url, redis_prefix) as wx:
            status = await wx.windows.get(openid)
        out = settings.output
        if out.json_mode:
            out.emit_json(
                {
                    **jsonable(status),
                    "reachable": status.reachable,
                    "messages_left": status.messages_left,
                    "until": jsonable(status.until),
                    "reason": status.reason,
                }
            )
            return
        left = "" if status.messages_left is None else str(status.messages_left)
        out.table(
            ["openid", "state", "messages left", "until"],
            [(openid, _state(status), left, format_time(status.until))],
            numeric=["messages left"],
        )
        if status.windows:
            out.table(
                ["window", "opened", "ends", "messages left"],
                [
                    (w.window, format_time(w.opened_at), format_time(w.until), w.messages_left)
                    for w in status.windows
                ],
                title="open windows (spent in this order)",
                numeric=["messages left"],
            )
        if status.errcode is not None and status.checked_at is not None:
            out.note(f"WeChat answered {status.errcode} at {format_time(status.checked_at)}")

    run(settings, main)


@windows.command("reachable")
@ledger_options
@common_options
@pass_settings
def reachable(settings: Settings, redis_url: str | None, redis_prefix: str) -> None:
    """How many users can be messaged now; with --json, also which (streamed).

    \b
    wechat-kf windows reachable
    wechat-kf --json windows reachable | jq -r '.openids[]' > reachable.txt
    """

    async def main() -> None:
        out = settings.output
        count = 0
        async with open_ledger(settings, redis_url, redis_prefix) as wx:
            if out.json_mode:
                # Streamed as it is read: the list is never held in memory.
                sys.stdout.write('{"openids": [')
                async for openid in wx.windows.reachable():
                    sys.stdout.write(("" if count == 0 else ", ") + json.dumps(openid))
                    count += 1
                sys.stdout.write(f'], "count": {count}}}\n')
                sys.stdout.flush()
                return
            async for _ in wx.windows.reachable():
                count += 1
        out.line(f"{plural(count, 'user')} reachable now")

    run(settings, main)

"""The clients under test. Each sends ``n`` text messages with ``c`` in flight; returns msgs/s.

Every client does the minimum a correct client must: fetch an access token first, then per
message encode a JSON body (with the recipient), POST it with the token in the query, decode
the JSON answer and check ``errcode``. Each measurement creates its client, fetches the token,
warms up (``2 * c`` sends from ``c`` workers), then times ``n`` sends.

The token fetch matters for httpx: its pool assigns every queued request to a connection that
is idle, so the first wave of requests piles onto the token's connection and the pool opens
fewer connections than ``c`` (and httpx's per-request pool bookkeeping grows with the number
of connections). Raw clients do it too, so that every client starts the same way.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

SEND_PATH = "/cgi-bin/message/custom/send"
TOKEN_PATH = "/cgi-bin/stable_token"
TOKEN = "BENCH_" + "t" * 120
APPID = "wx0123456789abcdef"
SECRET = "bench-secret"
CONTENT = "Your order has shipped. 您的订单已发货。"


def openids(n: int) -> list[str]:
    """``n`` openid-shaped recipients (28 characters, like WeChat's)."""
    return [f"oBENCH{i:022d}" for i in range(n)]


def _body(openid: str) -> bytes:
    return json.dumps(
        {"touser": openid, "msgtype": "text", "text": {"content": CONTENT}},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def _token_body() -> bytes:
    return json.dumps(
        {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    ).encode()


def _check(payload: dict[str, Any]) -> None:
    if payload.get("errcode", 0) != 0:
        raise RuntimeError(f"send failed: {payload}")


async def _workers(c: int, items: Iterator[str], one: Callable[[str], Awaitable[None]]) -> None:
    async def worker() -> None:
        for openid in items:  # one shared iterator: each item goes to exactly one worker
            await one(openid)

    await asyncio.gather(*(worker() for _ in range(c)))


async def _timed(c: int, n: int, one: Callable[[str], Awaitable[None]]) -> float:
    warm = openids(max(2 * c, 50))
    await _workers(c, iter(warm), one)
    recipients = openids(n)
    started = time.perf_counter()
    await _workers(c, iter(recipients), one)
    return n / (time.perf_counter() - started)


# --------------------------------------------------------------------------- raw clients


async def raw_httpx(base: str, c: int, n: int, *, transport: str) -> float:
    """A bare ``httpx.AsyncClient``, pool sized to ``c`` (keep-alive too)."""
    import httpx

    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
    else:
        client = httpx.AsyncClient(limits=limits)
    headers = {"Content-Type": "application/json"}

    async with client:
        answer = await client.post(f"{base}{TOKEN_PATH}", content=_token_body(), headers=headers)
        url = f"{base}{SEND_PATH}?access_token={json.loads(answer.content)['access_token']}"

        async def one(openid: str) -> None:
            response = await client.post(url, content=_body(openid), headers=headers)
            _check(json.loads(response.content))

        return await _timed(c, n, one)


async def raw_aiohttp(base: str, c: int, n: int) -> float:
    """A bare ``aiohttp.ClientSession`` (the reference ceiling of the client side)."""
    import aiohttp

    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
        token_url = f"{base}{TOKEN_PATH}"
        async with session.post(token_url, data=_token_body(), headers=headers) as answer:
            url = (
                f"{base}{SEND_PATH}?access_token={json.loads(await answer.read())['access_token']}"
            )

        async def one(openid: str) -> None:
            async with session.post(url, data=_body(openid), headers=headers) as response:
                _check(json.loads(await response.read()))

        return await _timed(c, n, one)


# --------------------------------------------------------------------------- wechat_kf


def _client(base: str, c: int, transport: str) -> Any:
    from wechat_kf import AsyncWeChat

    return AsyncWeChat(APPID, SECRET, base_url=base, transport=transport, max_connections=c)  # type: ignore[arg-type]


async def wx_send(base: str, c: int, n: int, *, transport: str) -> float:
    """``await wx.message.send(openid, message)`` from ``c`` worker tasks."""
    from wechat_kf import Text

    message = Text(content=CONTENT)
    async with _client(base, c, transport) as wx:
        await wx.access_token()  # then the warm-up opens C connections at once, as raw clients do
        send = wx.message.send

        async def one(openid: str) -> None:
            await send(openid, message)

        return await _timed(c, n, one)


async def wx_send_many(base: str, c: int, n: int, *, transport: str) -> float:
    """``await wx.message.send_many(openids, message, max_concurrency=c)``."""
    from wechat_kf import Text

    message = Text(content=CONTENT)
    async with _client(base, c, transport) as wx:
        await wx.access_token()
        await wx.message.send_many(openids(max(2 * c, 50)), message, max_concurrency=c)
        return await timed_send_many(wx, openids(n), message, c)


async def timed_send_many(wx: Any, recipients: list[str], message: Any, c: int) -> float:
    """One ``send_many`` to ``recipients`` (every one sent, else an error): msgs/s."""
    started = time.perf_counter()
    report = await wx.message.send_many(recipients, message, max_concurrency=c)
    elapsed = time.perf_counter() - started
    if report.sent != len(recipients):
        raise RuntimeError(f"send_many: {dict(report.counts)}")
    return len(recipients) / elapsed


# --------------------------------------------------------------------------- wechatpy


def wechatpy_threads(base: str, threads: int, n: int) -> float:
    """wechatpy (sync, requests) from ``threads`` threads sharing one client, as usually done."""
    from wechatpy import WeChatClient

    client = WeChatClient(APPID, SECRET, access_token=TOKEN)
    client.API_BASE_URL = f"{base}/cgi-bin/"
    lock = threading.Lock()

    def run(items: Iterator[str]) -> None:
        while True:
            with lock:
                openid = next(items, None)
            if openid is None:
                return
            client.message.send_text(openid, CONTENT)

    with ThreadPoolExecutor(threads) as pool:
        warm = iter(openids(max(2 * threads, 50)))
        list(pool.map(run, [warm] * threads))
        items = iter(openids(n))
        started = time.perf_counter()
        list(pool.map(run, [items] * threads))
        return n / (time.perf_counter() - started)

"""The clients under test. Each sends text messages with ``c`` in flight and returns msgs/s.

Every client does the minimum a correct client must: fetch an access token first, then per
message encode a JSON body (with the recipient), POST it with the token in the query, decode
the JSON answer and check ``errcode``. Each measurement creates its client, fetches the token,
warms up (``2 * c`` sends from ``c`` workers, so that ``c`` connections are open), then sends
for a :class:`Budget`: ``n`` messages or ``seconds``, whichever ends first. Workers share one
iterator over the recipients that stops yielding when the budget is spent; the rate counts
every message sent from the first to the last answer.

The token fetch matters for httpx's own pool: it assigns every queued request to a connection
that is idle, so the first wave of requests piles onto the token's connection and the pool
opens fewer connections than ``c``. Every client fetches a token first, so all start alike.

Clients run on asyncio or trio (``anyio.run``); raw aiohttp on asyncio only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import attrs

SEND_PATH = "/cgi-bin/message/custom/send"
TOKEN_PATH = "/cgi-bin/stable_token"
TOKEN = "BENCH_" + "t" * 120
APPID = "wx0123456789abcdef"
SECRET = "bench-secret"
CONTENT = "Your order has shipped. 您的订单已发货。"


@attrs.frozen
class Budget:
    """How long one measurement sends: at most ``n`` messages and about ``seconds``."""

    n: int
    seconds: float


def openid(i: int) -> str:
    """An openid-shaped recipient (28 characters, like WeChat's)."""
    return f"oBENCH{i:022d}"


#: One measurement: messages per second, and the client's CPU microseconds per message (the
#: figure a busy shared machine disturbs least: it does not count time spent waiting for a core).
Result = tuple[float, float]


class Counter:
    """What :func:`feed` handed out: how many, over how long, for how much CPU."""

    def __init__(self) -> None:
        self.count = 0
        self.started = time.perf_counter()
        self.last = self.started
        self.cpu = time.process_time()

    def result(self) -> Result:
        """Call once every message handed out was answered."""
        cpu = time.process_time() - self.cpu
        return (
            self.count / ((self.last - self.started) or 1e-9),
            cpu / (self.count or 1) * 1e6,
        )


def openids(n: int) -> list[str]:
    """``n`` openid-shaped recipients."""
    return [openid(i) for i in range(n)]


def feed(budget: Budget, counter: Counter | None = None) -> Iterator[str]:
    """Recipients until the budget is spent, counted on ``counter``."""
    counter = counter or Counter()
    clock = time.perf_counter
    counter.cpu = time.process_time()
    counter.started = clock()
    deadline = counter.started + budget.seconds
    for i in range(budget.n):
        now = clock()
        if now > deadline:
            return
        counter.count, counter.last = i + 1, now
        yield openid(i)


def _body(recipient: str) -> bytes:
    return json.dumps(
        {"touser": recipient, "msgtype": "text", "text": {"content": CONTENT}},
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
        for recipient in items:  # one shared iterator: each item goes to exactly one worker
            await one(recipient)

    async with anyio.create_task_group() as tg:
        for _ in range(c):
            tg.start_soon(worker)


def warm_up(c: int) -> Budget:
    """The warm-up before each measurement: ``2 * c`` sends (``c`` connections open), <= 2 s."""
    return Budget(n=2 * c, seconds=2.0)


async def _timed(c: int, budget: Budget, one: Callable[[str], Awaitable[None]]) -> Result:
    await _workers(c, feed(warm_up(c)), one)
    counter = Counter()
    await _workers(c, feed(budget, counter), one)
    return counter.result()


# --------------------------------------------------------------------------- raw clients


async def raw_httpx(base: str, c: int, budget: Budget, *, transport: str = "httpx") -> Result:
    """A bare ``httpx.AsyncClient`` (httpx's own pool, or httpx-aiohttp's), sized to ``c``."""
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

        async def one(recipient: str) -> None:
            response = await client.post(url, content=_body(recipient), headers=headers)
            _check(json.loads(response.content))

        return await _timed(c, budget, one)


async def raw_aiohttp(base: str, c: int, budget: Budget) -> Result:
    """A bare ``aiohttp.ClientSession`` (the reference ceiling of the client side)."""
    import aiohttp

    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
        token_url = f"{base}{TOKEN_PATH}"
        async with session.post(token_url, data=_token_body(), headers=headers) as answer:
            url = (
                f"{base}{SEND_PATH}?access_token={json.loads(await answer.read())['access_token']}"
            )

        async def one(recipient: str) -> None:
            async with session.post(url, data=_body(recipient), headers=headers) as response:
                _check(json.loads(await response.read()))

        return await _timed(c, budget, one)


# --------------------------------------------------------------------------- wechat_kf


def _client(base: str, c: int, transport: str) -> Any:
    from wechat_kf import AsyncWeChat

    return AsyncWeChat(APPID, SECRET, base_url=base, transport=transport, max_connections=c)  # type: ignore[arg-type]


async def wx_send(base: str, c: int, budget: Budget, *, transport: str) -> Result:
    """``await wx.message.send(openid, message)`` from ``c`` worker tasks."""
    from wechat_kf import Text

    message = Text(content=CONTENT)
    async with _client(base, c, transport) as wx:
        await wx.access_token()  # then the warm-up opens C connections at once, as raw clients do
        send = wx.message.send

        async def one(recipient: str) -> None:
            await send(recipient, message)

        return await _timed(c, budget, one)


async def wx_send_many(base: str, c: int, budget: Budget, *, transport: str) -> Result:
    """``await wx.message.send_many(recipients, message, max_concurrency=c)``."""
    from wechat_kf import Text

    message = Text(content=CONTENT)
    async with _client(base, c, transport) as wx:
        await wx.access_token()
        await wx.message.send_many(feed(warm_up(c)), message, max_concurrency=c)
        counter = Counter()
        report = await wx.message.send_many(feed(budget, counter), message, max_concurrency=c)
        if report.sent != counter.count:
            raise RuntimeError(f"send_many: {dict(report.counts)}")
        return counter.result()


async def timed_send_many(wx: Any, recipients: list[str], message: Any, c: int) -> float:
    """One ``send_many`` to ``recipients`` (every one sent, else an error): msgs/s."""
    started = time.perf_counter()
    report = await wx.message.send_many(recipients, message, max_concurrency=c)
    elapsed = time.perf_counter() - started
    if report.sent != len(recipients):
        raise RuntimeError(f"send_many: {dict(report.counts)}")
    return len(recipients) / elapsed


# --------------------------------------------------------------------------- wechatpy


def wechatpy_threads(base: str, threads: int, budget: Budget) -> Result:
    """wechatpy (sync, requests) from ``threads`` threads sharing one client, as usually done."""
    from wechatpy import WeChatClient

    client = WeChatClient(APPID, SECRET, access_token=TOKEN)
    client.API_BASE_URL = f"{base}/cgi-bin/"
    lock = threading.Lock()

    def run(items: Iterator[str]) -> None:
        while True:
            with lock:
                recipient = next(items, None)
            if recipient is None:
                return
            client.message.send_text(recipient, CONTENT)

    with ThreadPoolExecutor(threads) as pool:
        warm = feed(warm_up(threads))
        list(pool.map(run, [warm] * threads))
        counter = Counter()
        items = feed(budget, counter)
        list(pool.map(run, [items] * threads))
        return counter.result()

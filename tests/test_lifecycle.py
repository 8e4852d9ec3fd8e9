"""The client's life cycle and its logging: the classic mistakes get typed errors that say what to
do, and a library that nobody configured logging for prints nothing."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import textwrap

import pytest
import trio

from wechat_kf import (
    AsyncWeChat,
    ClientClosedError,
    ClientUsageError,
    EventLoopChangedError,
    SendStatus,
    Text,
)
from wechat_kf.testing import FakeWeChat

from .conftest import OWN_HTTPX, SDK_TRANSPORTS, SleepRecorder, loopback_client

KF_LIST = "/cgi-bin/customservice/getkflist"
NOTICE = Text(content="hello")


# ---------------------------------------------------------------- used after aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("token", ["cached", "not-fetched"])
async def test_a_closed_client_says_so_and_sends_nothing(
    fake: FakeWeChat, transport: str, token: str
) -> None:
    if transport == OWN_HTTPX:
        pytest.skip("its owner closes a caller's client: see the test after this one")
    with fake.serve() as server:
        wx = loopback_client(fake, server, transport)
        async with wx:
            if token == "cached":
                await wx.kf.list()
        seen = len(fake.requests)
        with pytest.raises(ClientClosedError) as info:
            await wx.kf.list()
        report = await wx.message.send_many(["a", "b", "c"], NOTICE, max_concurrency=1)
    error = info.value
    assert isinstance(error, RuntimeError)  # what httpx raised before, for code that caught it
    assert isinstance(error, ClientUsageError)
    assert error.may_have_reached_wechat is False
    assert "aclose()" in str(error)
    assert "close it once at shutdown" in str(error)
    assert len(fake.requests) == seen  # nothing was sent
    assert isinstance(report.stopped_by, ClientClosedError)
    assert [r.status for r in report.results] == [SendStatus.FAILED] + [SendStatus.SKIPPED] * 2


@pytest.mark.anyio
async def test_a_client_whose_http_client_its_owner_closed(fake: FakeWeChat) -> None:
    http = fake.http_client()
    wx = AsyncWeChat(fake.appid, fake.secret, http_client=http)
    await wx.kf.list()
    await http.aclose()
    with pytest.raises(ClientClosedError, match=r"owner of its httpx\.AsyncClient"):
        await wx.kf.list()


# ---------------------------------------------------------------- another event loop

ASYNCIO_TRANSPORTS = [name for name, libraries in SDK_TRANSPORTS.items() if "asyncio" in libraries]
TRIO_TRANSPORTS = [name for name, libraries in SDK_TRANSPORTS.items() if "trio" in libraries]


# The first loop closes with the client's connections open (the mistake): their sockets are
# left to the garbage collector, which warns. What the SDK owes is the typed error, and no
# "Unclosed client session" (aiohttp's) however the client is closed, or not.
@pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")
@pytest.mark.parametrize("close", ["aclose-in-a-third-loop", "never-closed"])
@pytest.mark.parametrize("transport", ASYNCIO_TRANSPORTS)
def test_asyncio_run_twice_with_one_client(
    fake: FakeWeChat, transport: str, close: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with fake.serve() as server:
        # A module-level client (the mistake's usual form), dropped at the end.
        clients = [loopback_client(fake, server, transport)]

        async def agents() -> object:
            return await clients[0].kf.list()

        assert asyncio.run(agents()) == []
        seen = len(fake.requests)
        with pytest.raises(EventLoopChangedError) as info:
            asyncio.run(agents())
        assert len(fake.requests) == seen  # nothing was sent
        if close == "aclose-in-a-third-loop":
            asyncio.run(clients[0].aclose())
        # The traceback reaches the client through its frames: drop it with the client, so that
        # the dead loop's sockets are collected (and warn) here, not in some later test.
        error = info.value
        error.__traceback__ = None
        del info
        clients.clear()
        gc.collect()
    assert isinstance(error, RuntimeError)
    assert error.may_have_reached_wechat is False
    assert "one client per event loop" in str(error)
    assert "asyncio.run()" in str(error)
    assert "Unclosed" not in caplog.text


@pytest.mark.parametrize("transport", TRIO_TRANSPORTS)
def test_trio_run_twice_with_one_client(fake: FakeWeChat, transport: str) -> None:
    with fake.serve() as server:
        wx = loopback_client(fake, server, transport)

        async def agents() -> object:
            return await wx.kf.list()

        async def close() -> None:
            await wx.aclose()

        assert trio.run(agents) == []
        with pytest.raises(EventLoopChangedError):
            trio.run(agents)
        trio.run(close)


@pytest.mark.anyio
async def test_a_client_made_outside_the_loop_works_in_it(fake: FakeWeChat) -> None:
    # Binding happens at the first call, not at construction (module-level clients are fine as
    # long as one event loop uses them).
    wx = AsyncWeChat(fake.appid, fake.secret, http_client=fake.http_client())
    async with wx:
        assert await wx.kf.list() == []
        assert await wx.with_options(timeout=3).kf.list() == []


# ---------------------------------------------------------------- logging


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("wechat_kf").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


@pytest.mark.anyio
async def test_retries_are_logged_at_info(
    fake: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wechat_kf")
    fake.inject(KF_LIST, errcode=-1, times=2)
    async with fake.client(sleep=SleepRecorder()) as wx:
        assert await wx.kf.list() == []
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    assert {r.levelno for r in retries} == {logging.INFO}


def test_nothing_is_printed_without_logging_configured() -> None:
    # A fresh interpreter that never configures logging: retries, a failed early refresh and a
    # force refresh happen, and stderr stays empty (no logging.lastResort output).
    script = textwrap.dedent(
        """
        import time
        import anyio
        from wechat_kf import AccessToken, AsyncWeChat, MemoryTokenStore
        from wechat_kf.testing import FakeWeChat

        async def no_sleep(_):
            pass

        async def main():
            fake = FakeWeChat()
            store = MemoryTokenStore()
            await store.set(fake.appid, AccessToken(fake.issue_token(), time.time() + 100))
            fake.inject("/cgi-bin/customservice/getkflist", errcode=-1, times=2)
            fake.inject("/cgi-bin/stable_token", status=503, times=3)
            with fake.serve() as server:
                async with AsyncWeChat(
                    fake.appid, fake.secret, base_url=server.base_url, sleep=no_sleep,
                    token_store=store,
                ) as wx:
                    await wx.kf.list()
            print("done")

        anyio.run(main)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    assert done.stderr == ""

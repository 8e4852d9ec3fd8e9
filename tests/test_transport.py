"""The transports of the client the SDK creates: which one ``transport=`` picks, and its pool.

Each transport's own behaviour on the wire is tested elsewhere (``test_anyio_transport.py``,
``test_faults.py``, ``test_bulk.py`` for pool sizes under ``send_many``); this is the choice
itself and what every transport of the SDK's client shares.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx
import pytest

from wechat_kf import AsyncWeChat
from wechat_kf._pool import AnyioTransport
from wechat_kf._transport import (
    TRANSPORTS,
    DirectSender,
    SDKHTTPClient,
    _SelectingTransport,
    make_transport,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio


def test_the_transport_names() -> None:
    assert TRANSPORTS == ("auto", "anyio", "aiohttp", "httpx")


def test_each_name_makes_its_transport_and_the_handle_that_sizes_it() -> None:
    for kind in ("anyio", "httpx"):  # "httpx" is another name of the SDK's own pool
        anyio_transport, sizer = make_transport(kind, max_connections=7, keepalive_expiry=3.0)  # type: ignore[arg-type]
        assert type(anyio_transport) is AnyioTransport
        assert sizer is anyio_transport
        assert (sizer.max_connections, anyio_transport.pool._expiry) == (7, 3.0)
        assert isinstance(anyio_transport, DirectSender)
    for kind in ("auto", "aiohttp"):
        lazy, sizer = make_transport(kind, max_connections=7, keepalive_expiry=3.0)  # type: ignore[arg-type]
        assert type(lazy) is _SelectingTransport
        assert sizer is lazy
        assert (lazy.requested, lazy.active, lazy.max_connections) == (kind, None, 7)
        assert isinstance(lazy, DirectSender)


def test_aiohttp_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wechat_kf._transport.aiohttp_installed", lambda: False)
    with pytest.raises(ImportError) as info:
        make_transport("aiohttp", max_connections=1, keepalive_expiry=1.0)
    assert str(info.value) == (
        'transport="aiohttp" needs the aiohttp extra: pip install "wechat_kf[aiohttp]"'
    )
    lazy, _ = make_transport("auto", max_connections=1, keepalive_expiry=1.0)  # auto: no error
    assert type(lazy) is _SelectingTransport


async def test_the_choice_waits_for_the_first_request_and_keeps_the_pool_size(
    fake: FakeWeChat, anyio_backend: str
) -> None:
    selector = _SelectingTransport("auto", 4, 30.0)
    assert selector.ensure_capacity(6) == 6  # before the choice: remembered
    assert selector.ensure_capacity(2) == 6  # never shrinks
    with fake.serve() as server:
        async with SDKHTTPClient(transport=selector) as http:
            await selector.release_closed_loop()  # nothing chosen yet: nothing to release
            response = await http.post(f"{server.base_url}/cgi-bin/stable_token", json={})
            assert response.status_code == 200
            assert selector.active == ("aiohttp" if anyio_backend == "asyncio" else "anyio")
            inner = selector._inner
            assert inner is not None
            assert inner.max_connections == 6
            assert selector.ensure_capacity(10) == 10
            assert inner.max_connections == 10
            assert selector.ensure_capacity(3) == 10
            assert inner.max_connections == 10
            await selector.release_closed_loop()
    await _SelectingTransport("auto", 1, 1.0).aclose()  # never chosen: nothing to close


async def test_on_asyncio_without_the_extra_the_choice_is_anyio(
    monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("the choice on trio is tested below")
    monkeypatch.setattr("wechat_kf._transport.aiohttp_installed", lambda: False)
    selector = _SelectingTransport("auto", 2, 30.0)
    selector.prepare("GET", "http://127.0.0.1:1/")  # choosing happens here as well
    assert selector.active == "anyio"
    assert type(selector._inner) is AnyioTransport
    await selector.aclose()


def _choose_on_trio(requested: str) -> str | None:
    async def choose() -> str | None:
        selector = _SelectingTransport(requested, 2, 30.0)  # type: ignore[arg-type]
        selector.prepare("GET", "http://127.0.0.1:1/")
        await selector.aclose()
        return selector.active

    return anyio.run(choose, backend="trio")


def test_off_asyncio_the_choice_is_anyio_and_a_request_for_aiohttp_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wechat_kf")
    assert _choose_on_trio("auto") == "anyio"
    assert caplog.messages == []
    assert _choose_on_trio("aiohttp") == "anyio"
    assert caplog.messages == ["transport='aiohttp' runs on asyncio only; using anyio on trio"]


async def test_the_sdk_client_keeps_no_cookie(fake: FakeWeChat) -> None:
    fake.inject("/cgi-bin/stable_token", headers={"Set-Cookie": "sid=1"})
    with fake.serve() as server:
        async with SDKHTTPClient(transport=AnyioTransport(2)) as http:
            assert len(http.cookies) == 0
            response = await http.post(f"{server.base_url}/cgi-bin/stable_token", json={})
            assert response.headers["set-cookie"] == "sid=1"
            assert len(http.cookies) == 0
            http.cookies = {"a": "1"}  # type: ignore[assignment]
            assert len(http.cookies) == 0
            assert isinstance(http.cookies, httpx.Cookies)
            await http.post(f"{server.base_url}/cgi-bin/stable_token", json={}, cookies=None)
    (_, second) = fake.token_requests
    assert "cookie" not in second.headers


async def test_each_transport_of_the_sdk_client_answers(fake: FakeWeChat) -> None:
    with fake.serve() as server:
        for kind in TRANSPORTS:
            async with AsyncWeChat(
                fake.appid,
                fake.secret,
                base_url=server.base_url,
                transport=kind,  # type: ignore[arg-type]
                max_connections=3,
            ) as wx:
                assert await wx.kf.list() == []
                assert wx._pipeline.max_connections == 3
                assert wx._pipeline.ensure_connections(5) == 5
                assert wx._pipeline.ensure_connections(4) == 5
                await wx._http.release_closed_loop()  # type: ignore[attr-defined]


@pytest.mark.parametrize("extra", [True, False], ids=["with-extra", "without-extra"])
@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_every_transport_keeps_connections_alive_for_the_expiry_it_is_given(
    fake: FakeWeChat, kind: str, extra: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequential requests reuse one connection; with an expiry of 0, each opens its own."""
    if not extra:
        if kind == "aiohttp":
            pytest.skip("refused without the extra")
        monkeypatch.setattr("wechat_kf._transport.aiohttp_installed", lambda: False)
    for expiry, connections in ((30.0, 1), (0.0, 3)):
        transport, _ = make_transport(kind, max_connections=4, keepalive_expiry=expiry)  # type: ignore[arg-type]
        with fake.serve() as server:
            async with SDKHTTPClient(transport=transport) as http:
                for _ in range(3):
                    response = await http.post(f"{server.base_url}/cgi-bin/stable_token", json={})
                    assert response.status_code == 200
            assert (kind, expiry, server.connections_made) == (kind, expiry, connections)


def test_a_closed_loops_aiohttp_session_is_released_through_the_client(fake: FakeWeChat) -> None:
    """``asyncio.run`` twice with one client: the second loop closes the first one's session."""
    selector = _SelectingTransport("auto", 2, 30.0)
    http = SDKHTTPClient(transport=selector)
    # The answer closes its connection: no socket outlives the first loop, only the session.
    fake.inject("/cgi-bin/stable_token", headers={"Connection": "close"})
    with fake.serve() as server:

        async def first() -> None:
            await http.post(f"{server.base_url}/cgi-bin/stable_token", json={})

        anyio.run(first, backend="asyncio")
        assert selector.active == "aiohttp"
        inner: Any = selector._inner
        session = inner.client
        assert not session.closed

        async def release_and_close() -> None:
            await http.release_closed_loop()
            assert session.closed
            assert inner.client is None  # the next request makes a session in this loop
            await http.aclose()

        anyio.run(release_and_close, backend="asyncio")

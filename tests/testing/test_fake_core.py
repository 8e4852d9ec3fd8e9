"""The fake WeChat's own semantics: tokens, faults, request log, both serving modes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio


async def _get(fake: FakeWeChat, path: str, **params: str) -> dict[str, object]:
    async with fake.http_client(base_url="https://api.weixin.qq.com") as http:
        response = await http.get(path, params=params)
    return response.json()  # type: ignore[no-any-return]


async def _stable(fake: FakeWeChat, **extra: object) -> dict[str, object]:
    body = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}
    async with fake.http_client(base_url="https://api.weixin.qq.com") as http:
        response = await http.post("/cgi-bin/stable_token", json={**body, **extra})
    return response.json()  # type: ignore[no-any-return]


async def _classic(fake: FakeWeChat) -> dict[str, object]:
    return await _get(
        fake,
        "/cgi-bin/token",
        grant_type="client_credential",
        appid=fake.appid,
        secret=fake.secret,
    )


async def test_stable_token_is_the_same_while_valid(fake: FakeWeChat) -> None:
    first = await _stable(fake)
    fake.clock.advance(1000)
    second = await _stable(fake)
    assert first["access_token"] == second["access_token"]
    assert first["expires_in"] == 7200
    assert second["expires_in"] == 6200


async def test_stable_token_rotates_five_minutes_early(fake: FakeWeChat) -> None:
    first = await _stable(fake)
    fake.clock.advance(7200 - 299)
    second = await _stable(fake)
    assert second["access_token"] != first["access_token"]
    fake.check_token(str(first["access_token"]))  # the old one still works until it expires


async def test_stable_force_refresh_invalidates_and_is_limited(fake: FakeWeChat) -> None:
    first = await _stable(fake)
    forced = await _stable(fake, force_refresh=True)
    assert forced["access_token"] != first["access_token"]
    assert (await _stable(fake, force_refresh=True))["errcode"] == 45011  # < 30 s apart
    with pytest.raises(Exception, match="invalid credential"):
        fake.check_token(str(first["access_token"]))


async def test_classic_fetch_invalidates_previous_after_overlap(fake: FakeWeChat) -> None:
    first = str((await _classic(fake))["access_token"])
    second = str((await _classic(fake))["access_token"])
    assert first != second
    fake.check_token(first)  # both work during the overlap
    fake.clock.advance(301)
    with pytest.raises(Exception, match="expired"):
        fake.check_token(first)
    fake.check_token(second)


async def test_configurable_expires_in() -> None:
    fake = FakeWeChat(expires_in=600)
    assert (await _classic(fake))["expires_in"] == 600


@pytest.mark.parametrize(
    ("path", "method", "errcode"),
    [("/cgi-bin/nope", "GET", 40066), ("/cgi-bin/stable_token", "GET", 43002)],
)
async def test_unknown_path_and_wrong_method(
    fake: FakeWeChat, path: str, method: str, errcode: int
) -> None:
    async with fake.http_client(base_url="https://api.weixin.qq.com") as http:
        response = await http.request(method, path)
    assert response.json()["errcode"] == errcode
    assert " rid: " in response.json()["errmsg"]


async def test_form_encoded_stable_token_is_41002(fake: FakeWeChat) -> None:
    async with fake.http_client(base_url="https://api.weixin.qq.com") as http:
        response = await http.post(
            "/cgi-bin/stable_token",
            data={"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret},
        )
    assert response.json()["errcode"] == 41002


async def test_faults_apply_in_order_then_stop(fake: FakeWeChat) -> None:
    fake.inject("/cgi-bin/stable_token", errcode=-1, times=2)
    fake.inject("/cgi-bin/stable_token", status=503)
    answers = []
    async with fake.http_client(base_url="https://api.weixin.qq.com") as http:
        for _ in range(4):
            response = await http.post(
                "/cgi-bin/stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": fake.appid,
                    "secret": fake.secret,
                },
            )
            answers.append(
                response.status_code
                if response.status_code != 200
                else response.json().get("errcode", 0)
            )
    assert answers == [-1, -1, 503, 0]
    assert len(fake.requests) == 4


async def test_loopback_server_answers_like_in_process(fake: FakeWeChat) -> None:
    with fake.serve() as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            response = await http.post(
                "/cgi-bin/stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": fake.appid,
                    "secret": fake.secret,
                },
            )
            chunked = await http.post(
                "/cgi-bin/stable_token",
                content=_chunks(
                    [
                        b'{"grant_type":"client_credential",',
                        f'"appid":"{fake.appid}","secret":"{fake.secret}"}}'.encode(),
                    ]
                ),
                headers={"Content-Type": "application/json"},
            )
    assert response.json()["expires_in"] == 7200
    assert chunked.json()["access_token"] == response.json()["access_token"]


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_loopback_reset_and_delay(fake: FakeWeChat) -> None:
    with fake.serve() as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=0.1) as http:
            fake.inject("/cgi-bin/token", reset=True)
            with pytest.raises(httpx.TransportError):
                await http.get("/cgi-bin/token")
            fake.inject("/cgi-bin/token", delay=1.0)
            with pytest.raises(httpx.ReadTimeout):
                await http.get("/cgi-bin/token")


def test_request_log_is_bounded() -> None:
    fake = FakeWeChat(log_limit=3)
    for _ in range(5):
        fake.handle("GET", "/x", "", {}, b"")
    assert len(fake.requests) == 3


def test_recorded_request_repr_redacts() -> None:
    fake = FakeWeChat()
    fake.handle("GET", "/x", "access_token=SECRET-TOKEN&a=1", {}, b"")
    assert "SECRET-TOKEN" not in repr(fake.requests[0])
    assert fake.requests[0].access_token == "SECRET-TOKEN"


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (b'{"kf_account":"a@b","nickname":"\\u5ba2\\u670d"}', 40033),
        (b"", 44002),
        (b"{not json", 47001),
        (b"[1]", 47001),
    ],
)
async def test_json_body_rules(fake: FakeWeChat, body: bytes, errcode: int) -> None:
    token = fake.issue_token()
    async with fake.http_client(base_url="https://api.weixin.qq.com") as http:
        response = await http.post(
            f"/customservice/kfaccount/add?access_token={token}", content=body
        )
    assert response.json()["errcode"] == errcode


@pytest.mark.parametrize(
    ("query", "errcode"),
    [("", 41001), ("access_token=unknown", 40001)],
)
async def test_token_rules(fake: FakeWeChat, query: str, errcode: int) -> None:
    async with fake.http_client(base_url="https://api.weixin.qq.com") as http:
        response = await http.get(f"/cgi-bin/customservice/getkflist?{query}")
    assert response.json()["errcode"] == errcode


# ---------------------------------------------------------------- raw answers and extra headers


@pytest.fixture(params=["in-process", "loopback"])
async def raw_http(
    fake: FakeWeChat, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client on the fake: in-process, or over a real loopback connection."""
    if request.param == "in-process":
        async with fake.http_client(base_url="https://api.weixin.qq.com") as http:
            yield http
    else:
        with fake.serve() as server:
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                yield http


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}",  # cut short
        b"HTCPCP/1.0 418 I'm a teapot\r\n\r\n",
        b"",
    ],
    ids=["bad-content-length", "cut-short", "bad-status-line", "nothing"],
)
async def test_raw_malformed_framing_is_a_protocol_error(
    fake: FakeWeChat, raw_http: httpx.AsyncClient, raw: bytes
) -> None:
    fake.inject("/cgi-bin/token", raw=raw)
    with pytest.raises(httpx.RemoteProtocolError):
        await raw_http.get("/cgi-bin/token")
    assert len(fake.requests_to("/cgi-bin/token")) == 1
    # The next request is answered normally (on a new connection over loopback).
    assert (await raw_http.get("/cgi-bin/token")).json()["errcode"] == 40002


async def test_raw_well_formed_answer_is_delivered_as_is(
    fake: FakeWeChat, raw_http: httpx.AsyncClient
) -> None:
    fake.inject(
        "/cgi-bin/token",
        raw="HTTP/1.1 202 Odd\r\nX-Odd: caf\xe9\r\nContent-Length: 2\r\n\r\n{}",
    )
    response = await raw_http.get("/cgi-bin/token")
    assert response.status_code == 202
    assert response.headers.raw[0] == (b"X-Odd", b"caf\xe9")  # a str goes out as Latin-1
    assert response.content == b"{}"


async def test_extra_headers_ride_on_the_real_answer(
    fake: FakeWeChat, raw_http: httpx.AsyncClient
) -> None:
    fake.inject(
        "/cgi-bin/stable_token",
        headers=[("Set-Cookie", "sid=caf\xe9"), ("Set-Cookie", "b=2")],
    )
    body = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}
    response = await raw_http.post("/cgi-bin/stable_token", json=body)
    assert response.json()["expires_in"] == 7200  # handled as usual
    assert response.headers.get_list("set-cookie") == ["sid=café", "b=2"]
    assert (b"Set-Cookie", b"sid=caf\xe9") in response.headers.raw
    assert fake.tokens  # the request took effect


async def test_extra_headers_combine_with_an_injected_answer(
    fake: FakeWeChat, raw_http: httpx.AsyncClient
) -> None:
    fake.inject("/cgi-bin/token", status=503, headers={"X-Proxy": "lb-7"})
    response = await raw_http.get("/cgi-bin/token")
    assert response.status_code == 503
    assert response.headers["x-proxy"] == "lb-7"
    assert response.headers["content-type"] == "text/html"


async def test_an_injected_answer_can_echo_the_request(
    fake: FakeWeChat, raw_http: httpx.AsyncClient
) -> None:
    fake.inject("/cgi-bin/token", malformed=lambda request: b"echo " + request.raw_query.encode())
    fake.inject(
        "/cgi-bin/token",
        raw=lambda request: (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + request.method[:1].encode()
        ),
    )
    assert (await raw_http.get("/cgi-bin/token?a=1")).content == b"echo a=1"
    assert (await raw_http.get("/cgi-bin/token")).content == b"G"

"""Property: whatever WeChat (or a proxy) answers, every public call raises only our typed errors,
and no secret appears anywhere in what it raises.

Hypothesis scripts one to three faults per call, on the call's own endpoint and on the token
endpoint: raw bytes with any framing (bad status lines, ``Content-Length: abc``, ``Set-Cookie``
beyond ASCII, bodies cut short), fuzzed JSON (every errcode, wrong types, huge numbers, token
answers with unusable tokens or lifetimes), HTTP statuses with odd ``Retry-After``, resets,
late answers, and answers that echo the request back (its URL with the access token, its body
with the appsecret). Each public API method runs against the fake on a real loopback port, on
every SDK transport and async library. After the call, a plain call on the same client must
work (or fail for want of a token): a fault must not poison the client.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wechat_kf import AsyncWeChat, SendReport, Text, TokenError, WeChatError
from wechat_kf.testing import FakeServer, FakeWeChat, RecordedRequest

from .chains import assert_no_secret
from .conftest import sdk_client

pytestmark = pytest.mark.anyio

STABLE = "/cgi-bin/stable_token"
CLASSIC = "/cgi-bin/token"
AGENT = "kf_1@gh_fuzz"
USER = "o_fuzz_user"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
NOTICE = Text(content="hello")
NOW = int(time.time())


async def _send_many(wx: AsyncWeChat) -> SendReport:
    return await wx.message.send_many([USER, "o_other"], NOTICE, max_concurrency=2)


async def _stream_many(wx: AsyncWeChat) -> list[Any]:
    async with wx.message.stream_many([USER, "o_other"], NOTICE, max_concurrency=2) as results:
        return [result async for result in results]


async def _records(wx: AsyncWeChat) -> list[Any]:
    return [record async for record in wx.records.iter(NOW - 3600, NOW, number=2)]


#: Every public API method, with valid arguments, and the path it calls (``None``: tokens only).
CALLS: dict[str, tuple[Callable[[AsyncWeChat], Awaitable[Any]], str | None]] = {
    "access_token": (lambda wx: wx.access_token(), None),
    "kf.list": (lambda wx: wx.kf.list(), "/cgi-bin/customservice/getkflist"),
    "kf.list_online": (lambda wx: wx.kf.list_online(), "/cgi-bin/customservice/getonlinekflist"),
    "kf.add": (lambda wx: wx.kf.add("kf_2@gh_fuzz", "Ann"), "/customservice/kfaccount/add"),
    "kf.update": (lambda wx: wx.kf.update(AGENT, "Bob"), "/customservice/kfaccount/update"),
    "kf.delete": (lambda wx: wx.kf.delete("kf_9@gh_fuzz"), "/customservice/kfaccount/del"),
    "kf.invite": (
        lambda wx: wx.kf.invite(AGENT, "wx_fuzz"),
        "/customservice/kfaccount/inviteworker",
    ),
    "kf.upload_avatar": (
        lambda wx: wx.kf.upload_avatar(AGENT, PNG),
        "/customservice/kfaccount/uploadheadimg",
    ),
    "message.send": (lambda wx: wx.message.send(USER, NOTICE), "/cgi-bin/message/custom/send"),
    "message.send_many": (_send_many, "/cgi-bin/message/custom/send"),
    "message.stream_many": (_stream_many, "/cgi-bin/message/custom/send"),
    "message.typing": (lambda wx: wx.message.typing(USER), "/cgi-bin/message/custom/typing"),
    "message.cancel_typing": (
        lambda wx: wx.message.cancel_typing(USER),
        "/cgi-bin/message/custom/typing",
    ),
    "session.create": (
        lambda wx: wx.session.create(AGENT, USER),
        "/customservice/kfsession/create",
    ),
    "session.close": (lambda wx: wx.session.close(AGENT, USER), "/customservice/kfsession/close"),
    "session.get": (lambda wx: wx.session.get(USER), "/customservice/kfsession/getsession"),
    "session.list": (lambda wx: wx.session.list(AGENT), "/customservice/kfsession/getsessionlist"),
    "session.waiting": (lambda wx: wx.session.waiting(), "/customservice/kfsession/getwaitcase"),
    "records.page": (
        lambda wx: wx.records.page(NOW - 3600, NOW, number=2),
        "/customservice/msgrecord/getmsglist",
    ),
    "records.iter": (_records, "/customservice/msgrecord/getmsglist"),
}

# ---------------------------------------------------------------- what comes back

_KEYS = [
    "errcode",
    "errmsg",
    "access_token",
    "expires_in",
    "kf_list",
    "kf_online_list",
    "kf_account",
    "kf_nick",
    "kf_id",
    "kf_headimgurl",
    "status",
    "accepted_case",
    "invite_wx",
    "invite_expire_time",
    "invite_status",
    "createtime",
    "sessionlist",
    "openid",
    "count",
    "waitcaselist",
    "latest_time",
    "recordlist",
    "worker",
    "opercode",
    "text",
    "time",
    "number",
    "msgid",
]
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([-1, 0, 40001, 40014, 42001, 45009, 45011, 45015, 65413, 10**400, 7200])
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", "7200", "a\x00b", "caf\xe9", "x" * 3000, "1e400", "\ud800"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=12,
)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _echo(request: RecordedRequest) -> bytes:
    """A proxy's error page that repeats the request: URL (token) and body (secret)."""
    return b"<html>" + request.raw_query.encode() + b" " + request.body + b"</html>"


def _echo_json(request: RecordedRequest) -> bytes:
    """An errcode answer whose errmsg and fields repeat the request."""
    text = f"{request.path}?{request.raw_query} {request.body.decode('utf-8', 'replace')}"
    return _json_bytes({"errcode": 40003, "errmsg": text, "kf_list": text, "openid": text})


_BODIES = (
    _JSON.map(_json_bytes)
    | st.binary(max_size=40)
    | st.sampled_from([b"", b"<html>502</html>", b"{", b'{"errcode":', b"[]", b"null", b"\xff\xfe"])
)
_HEADER_NAMES = st.sampled_from(
    ["Content-Length", "Transfer-Encoding", "Set-Cookie", "Content-Type", "Retry-After", "X"]
)
_HEADER_VALUES = st.sampled_from(
    ["abc", "-1", "99999999999999999999", "chunked", "sid=caf\xe9", "2", "gzip", ""]
) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=12)
_STATUS_LINES = st.sampled_from(
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 500 Internal Server Error",
        b"HTTP/1.1 429 Too Many",
        b"HTTP/1.0 200 OK",
        b"HTTP/1.1 204 No Content",
        b"HTTP/1.1 302 Found",
        b"HTTP/1.1 OK",
        b"HTTP/2 200",
        b"garbage",
        b"",
    ]
) | st.binary(max_size=16)


@st.composite
def _raw(draw: st.DrawFn) -> bytes:
    head = [draw(_STATUS_LINES)]
    for name, value in draw(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=3)):
        head.append(f"{name}: {value}".encode("latin-1"))
    if draw(st.booleans()):
        head.append(b"Content-Length: %d" % draw(st.integers(0, 60)))
    return b"\r\n".join(head) + b"\r\n\r\n" + draw(_BODIES)


FAULTS = st.one_of(
    st.builds(lambda raw: {"raw": raw}, _raw()),
    st.builds(lambda body: {"malformed": body}, _BODIES),
    st.sampled_from([{"malformed": _echo}, {"malformed": _echo_json}, {"raw": _echo}]),
    st.builds(
        lambda status, retry_after: {"status": status, "retry_after": retry_after},
        st.integers(200, 599) | st.sampled_from([429, 500, 502, 503]),
        st.none() | st.sampled_from(["1", "abc", "-5", "1e400", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    ),
    st.builds(
        lambda errcode, errmsg: {"errcode": errcode, "errmsg": errmsg},
        st.sampled_from([-1, 40001, 40013, 40125, 42001, 45009, 45011, 45015, 48001, 65413])
        | st.integers(-(2**31), 2**31),
        st.none() | st.text(max_size=12),
    ),
    st.builds(
        lambda headers: {"headers": headers},
        st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), min_size=1, max_size=3),
    ),
    # Late answers cost real time (the client's read timeout): one in four of these.
    st.sampled_from([{"reset": True, "processed": True}] * 3 + [{"delay": 0.15}]),
)


class Served:
    """One fake on a loopback port and one client per token endpoint, for all the examples of
    one test (a client costs ~30 ms of CPU to make: its TLS context). Each example clears the
    faults and the client's tokens (remembered failures included) first."""

    def __init__(self, fake: FakeWeChat, server: FakeServer, transport: str) -> None:
        self.fake = fake
        self.clients = {
            endpoint: sdk_client(
                fake.appid,
                fake.secret,
                transport,
                base_url=server.base_url,
                token_endpoint=endpoint,
                timeout=0.1,
                token_fetch_timeout=0.1,
                sleep=_no_sleep,
            )
            for endpoint in ("stable", "classic")
        }


@pytest.fixture
async def served(transport: str) -> AsyncIterator[Served]:
    fake = FakeWeChat()
    fake.add_agent(AGENT, "Ann", online=True)
    with fake.serve() as server:
        here = Served(fake, server, transport)
        try:
            yield here
        finally:
            for client in here.clients.values():
                await client.aclose()


async def _no_sleep(_: float) -> None:
    return None


async def _plain_call_works(wx: AsyncWeChat) -> None:
    """The client is not poisoned: a plain call works, or fails only for want of a token."""
    # A failed fetch or a refused force refresh is remembered for a few seconds.
    with contextlib.suppress(TokenError):
        await wx.with_options(timeout=5).kf.list()


def _check(error: BaseException, fake: FakeWeChat) -> None:
    assert isinstance(error, WeChatError), f"{type(error).__module__}.{type(error).__name__}"
    assert_no_secret(error, [*fake.tokens, fake.secret])


@pytest.mark.parametrize("method", list(CALLS))
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    faults=st.lists(st.tuples(st.booleans(), FAULTS), min_size=1, max_size=3),
    token_endpoint=st.sampled_from(["stable", "classic"]),
)
async def test_any_answer_raises_only_typed_errors_without_secrets(
    served: Served,
    method: str,
    faults: list[tuple[bool, dict[str, Any]]],
    token_endpoint: str,
) -> None:
    fake, wx = served.fake, served.clients[token_endpoint]
    call, path = CALLS[method]
    token_path = STABLE if token_endpoint == "stable" else CLASSIC
    fake.clear_faults()
    await wx.tokens.invalidate()  # the call fetches a token: the token endpoint's faults apply
    fake.user_says(USER)
    for on_token_endpoint, fault in faults:
        fake.inject(token_path if on_token_endpoint or path is None else path, **fault)
    try:
        outcome = await call(wx)
    except BaseException as exc:  # anything at all: the property is about what escapes
        _check(exc, fake)
    else:
        results = outcome.results if isinstance(outcome, SendReport) else outcome
        for result in results if isinstance(results, list | tuple) else ():
            if getattr(result, "error", None) is not None:
                _check(result.error, fake)
    fake.clear_faults()
    if isinstance(wx._http, httpx.AsyncClient) and wx._http.cookies:
        # A caller's own client keeps the cookies a fuzzed answer set (httpx's jar, not the
        # SDK's: test_faults.py checks what a cookie httpx cannot encode does to such a client).
        wx._http.cookies.clear()
    await _plain_call_works(wx)

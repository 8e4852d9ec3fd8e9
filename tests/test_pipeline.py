"""The request pipeline: wire format, decoding, errcode mapping, retries, client options."""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest

from wechat_kf import (
    ERRCODE_CLASSES,
    AccessToken,
    APIError,
    AsyncWeChat,
    ConnectFailedError,
    ConnectionLostError,
    HTTPStatusError,
    MalformedResponseError,
    MemoryTokenStore,
    MinuteQuotaError,
    RequestBuildError,
    ResponseTimeoutError,
    RetryPolicy,
    ServerBusyError,
    Text,
    TokenFetchError,
    TransportError,
)
from wechat_kf.testing import FakeWeChat

from .conftest import OWN_HTTPX, SleepRecorder, loopback_client

pytestmark = pytest.mark.anyio

KF_LIST = "/cgi-bin/customservice/getkflist"
SEND = "/cgi-bin/message/custom/send"
ADD = "/customservice/kfaccount/add"


# ---------------------------------------------------------------- wire format


async def test_json_body_is_raw_utf8_and_compact(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.kf.add("kf_1@service", "客服<小王>&")
    (request,) = fake.requests_to(ADD)
    assert request.body == '{"kf_account":"kf_1@service","nickname":"客服<小王>&"}'.encode()
    assert b"\\u" not in request.body


async def test_at_sign_in_query_is_not_escaped(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent("kf_1@service", "Ann")
    await wx.session.list("kf_1@service")
    (request,) = fake.requests_to("/customservice/kfsession/getsessionlist")
    assert request.raw_query.endswith("&kf_account=kf_1@service")
    assert "%40" not in request.raw_query


async def test_json_labelled_text_plain_is_decoded(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.access_token()
    body = b'{"kf_list":[{"kf_account":"a@b","kf_nick":"n","kf_id":1001}]}'
    fake.inject(KF_LIST, malformed=body)  # served as 200 with the fake's default content type
    (account,) = await wx.kf.list()
    assert account.kf_id == "1001"


# ---------------------------------------------------------------- errcode mapping


@pytest.mark.parametrize(("errcode", "cls"), sorted(ERRCODE_CLASSES.items()))
async def test_errcode_maps_to_its_class(
    fake: FakeWeChat, wx: AsyncWeChat, errcode: int, cls: type[APIError]
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, errcode=errcode, errmsg="some reason", times=10)
    with pytest.raises(cls) as info:
        await wx.kf.list()
    error = info.value
    assert type(error) is cls
    assert error.errcode == errcode
    assert error.errmsg.startswith("some reason rid: ")
    assert error.rid is not None
    assert error.rid in error.errmsg


async def test_unknown_errcode_is_a_plain_api_error(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, errcode=99999, errmsg="new thing hint: [AbC-123]")
    with pytest.raises(APIError) as info:
        await wx.kf.list()
    assert type(info.value) is APIError
    assert info.value.rid == "AbC-123"


# ---------------------------------------------------------------- retries


async def test_busy_is_retried_with_backoff(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, errcode=-1, times=2)
    assert await wx.kf.list() == []
    assert len(fake.requests_to(KF_LIST)) == 3
    assert len(sleeps.delays) == 2
    assert 0.375 <= sleeps.delays[0] <= 0.5  # 0.5 s × jitter in [0.75, 1]
    assert 0.75 <= sleeps.delays[1] <= 1.0


async def test_retries_stop_at_max_retries(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, errcode=-1, times=10)
    with pytest.raises(ServerBusyError):
        await wx.kf.list()
    assert len(fake.requests_to(KF_LIST)) == 3  # 1 + max_retries (2)
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_http_errors_are_retried_for_reads(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder, status: int
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, status=status)
    assert await wx.kf.list() == []
    assert len(fake.requests_to(KF_LIST)) == 2


async def test_retry_after_is_honoured(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, status=429, retry_after="7")
    await wx.kf.list()
    assert sleeps.delays == [7.0]


async def test_too_long_retry_after_gives_up(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, status=503, retry_after="3600")
    with pytest.raises(HTTPStatusError) as info:
        await wx.kf.list()
    assert info.value.status_code == 503
    assert info.value.retry_after == 3600
    assert sleeps.delays == []


async def test_minute_quota_read_waits_for_next_minute(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, errcode=45011)
    await wx.kf.list()
    (delay,) = sleeps.delays
    assert 0.5 <= delay <= 60.5


async def test_send_is_not_retried_on_minute_quota(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    fake.user_says("user-1")
    fake.inject(SEND, errcode=45011)
    with pytest.raises(MinuteQuotaError):
        await wx.message.send("user-1", Text(content="hi"))
    assert len(fake.requests_to(SEND)) == 1


async def test_send_is_retried_when_wechat_is_busy(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    fake.user_says("user-1")
    fake.inject(SEND, errcode=-1)
    await wx.message.send("user-1", Text(content="hi"))
    assert len(fake.requests_to(SEND)) == 2
    assert len(fake.sent_to("user-1")) == 1


async def test_retrying_after_busy_is_an_assumption_busy_is_unknown_drops(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    # A WeChat that delivered the message and still answered -1: the default retry sends twice.
    fake.user_says("user-1")
    fake.inject(SEND, errcode=-1, processed=True)
    await wx.message.send("user-1", Text(content="hi"))
    assert len(fake.sent_to("user-1")) == 2
    # busy_is_unknown=True: no retry; the error says it may have reached WeChat.
    fake.inject(SEND, errcode=-1, processed=True)
    with pytest.raises(ServerBusyError) as info:
        await wx.message.send("user-1", Text(content="hi"), busy_is_unknown=True)
    assert info.value.may_have_reached_wechat is True
    assert len(fake.requests_to(SEND)) == 3
    assert len(fake.sent_to("user-1")) == 3
    assert len(sleeps.delays) == 1  # only the default send's retry waited


def test_server_busy_error_keeps_its_outcome_when_pickled() -> None:
    import pickle

    error = ServerBusyError(-1, "system error")
    error.may_have_reached_wechat = True
    copy = pickle.loads(pickle.dumps(error))
    assert copy.may_have_reached_wechat is True
    assert copy.errmsg == "system error"
    assert ServerBusyError(-1, "x").may_have_reached_wechat is False


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_send_is_not_retried_on_http_errors(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder, status: int
) -> None:
    fake.user_says("user-1")
    fake.inject(SEND, status=status)
    with pytest.raises(HTTPStatusError):
        await wx.message.send("user-1", Text(content="hi"))
    assert len(fake.requests_to(SEND)) == 1
    assert sleeps.delays == []


async def test_send_is_never_retried_after_a_read_timeout(fake: FakeWeChat) -> None:
    fake.user_says("user-1")
    fake.inject(SEND, delay=0.5)  # processed: the message reaches the user, the answer is late
    async with fake.client(timeout=0.05) as wx:
        with pytest.raises(ResponseTimeoutError) as info:
            await wx.message.send("user-1", Text(content="hi"))
    assert info.value.may_have_reached_wechat
    assert len(fake.requests_to(SEND)) == 1
    assert len(fake.sent_to("user-1")) == 1


async def test_read_is_retried_after_a_read_timeout(fake: FakeWeChat) -> None:
    sleeps = SleepRecorder()
    async with fake.client(timeout=0.05, sleep=sleeps) as wx:
        await wx.access_token()
        fake.inject(KF_LIST, delay=0.5)
        assert await wx.kf.list() == []
    assert len(fake.requests_to(KF_LIST)) == 2


async def test_send_is_retried_when_the_connection_failed(fake: FakeWeChat) -> None:
    fake.user_says("user-1")
    sleeps = SleepRecorder()
    async with fake.client(sleep=sleeps) as wx:
        fake.inject(SEND, connect_error=True)
        await wx.message.send("user-1", Text(content="hi"))
    assert len(fake.sent_to("user-1")) == 1
    assert len(sleeps.delays) == 1


async def test_connection_failure_is_typed_and_chained() -> None:
    # Nothing listens on port 1 of loopback: the connection is refused.
    async with AsyncWeChat("wxapp", "secret", base_url="http://127.0.0.1:1", sleep=_no_sleep) as wx:
        with pytest.raises(TokenFetchError) as info:
            await wx.access_token()
    assert info.value.may_have_reached_wechat is False
    cause = info.value.__cause__
    assert isinstance(cause, ConnectFailedError)
    assert cause.may_have_reached_wechat is False
    assert isinstance(cause.__cause__, httpx.ConnectError)


async def _no_sleep(_: float) -> None:
    return None


async def test_reset_on_loopback_is_connection_lost_and_send_not_retried(
    fake: FakeWeChat,
) -> None:
    with fake.serve() as server:
        fake.user_says("user-1")
        async with AsyncWeChat(
            fake.appid, fake.secret, base_url=server.base_url, sleep=_no_sleep
        ) as wx:
            await wx.access_token()
            fake.inject(SEND, reset=True, processed=True)
            with pytest.raises(ConnectionLostError) as info:
                await wx.message.send("user-1", Text(content="hi"))
    assert info.value.may_have_reached_wechat
    assert len(fake.requests_to(SEND)) == 1
    assert len(fake.sent_to("user-1")) == 1


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b'{"kf_list": ', b"[1, 2]", b"", b'{"errcode": "x"}'],
)
async def test_malformed_answers_are_typed(fake: FakeWeChat, wx: AsyncWeChat, body: bytes) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, malformed=body)
    with pytest.raises(MalformedResponseError):
        await wx.kf.list()


async def test_wrong_shape_is_typed(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, malformed=b'{"kf_list": [{"kf_nick": "no account"}]}')
    with pytest.raises(MalformedResponseError, match=r"KfList|kf_account"):
        await wx.kf.list()


# ---------------------------------------------------------------- client options and lifecycle


async def test_with_options_shares_http_client_and_tokens(
    fake: FakeWeChat, sleeps: SleepRecorder
) -> None:
    async with fake.client(sleep=sleeps) as wx:
        patient = wx.with_options(max_retries=5, timeout=30)
        assert patient.tokens is wx.tokens
        assert patient._http is wx._http
        assert patient.appid == wx.appid
        await wx.access_token()
        fake.inject(KF_LIST, errcode=-1, times=4)
        await patient.kf.list()
        assert len(fake.requests_to(KF_LIST)) == 5
        fake.inject(KF_LIST, errcode=-1, times=4)
        with pytest.raises(ServerBusyError):
            await wx.kf.list()  # the original keeps its 2 retries
        await patient.aclose()  # the copy does not own the HTTP client
        assert not wx._http.is_closed
    assert wx._http.is_closed
    assert len(fake.token_requests) == 1


async def test_a_retry_policy_configures_the_client_and_its_copies(
    fake: FakeWeChat, sleeps: SleepRecorder
) -> None:
    steady = RetryPolicy(max_retries=4, initial_delay=1.5, max_delay=1.5, jitter=1.0)
    async with fake.client(retry=steady, sleep=sleeps) as wx:
        await wx.access_token()
        fake.inject(KF_LIST, errcode=-1, times=4)
        await wx.kf.list()
        assert len(fake.requests_to(KF_LIST)) == 5
        assert sleeps.delays == [1.5] * 4
        # A copy with a count only keeps the rest of the policy...
        sleeps.delays.clear()
        fake.inject(KF_LIST, errcode=-1, times=1)
        await wx.with_options(max_retries=1).kf.list()
        assert sleeps.delays == [1.5]
        # ...a copy with a policy takes all of it.
        fake.inject(KF_LIST, errcode=-1, times=1)
        with pytest.raises(ServerBusyError):
            await wx.with_options(retry=RetryPolicy(max_retries=0)).kf.list()
        with pytest.raises(ValueError, match="max_retries=1 contradicts"):
            wx.with_options(retry=steady, max_retries=1)


def test_retry_policy_and_max_retries_must_agree() -> None:
    policy = RetryPolicy(max_retries=3)
    with pytest.raises(
        ValueError,
        match=r"max_retries=5 contradicts retry=RetryPolicy\(max_retries=3\): give the count "
        r"in one place",
    ):
        AsyncWeChat("wxapp", "s", retry=policy, max_retries=5)
    AsyncWeChat("wxapp", "s", retry=policy, max_retries=3)  # the same count twice: consistent
    with pytest.raises(ValueError, match=r"retry must be a wechat_kf\.RetryPolicy, got int"):
        AsyncWeChat("wxapp", "s", retry=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", -1),
        ("initial_delay", -0.5),
        ("max_delay", float("nan")),
        ("jitter", 1.5),
        ("retry_after_max", "60"),
        ("minute_quota_max_wait", True),
    ],
)
def test_retry_policy_refuses_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


async def test_user_http_client_is_not_closed(fake: FakeWeChat) -> None:
    http = fake.http_client()
    async with AsyncWeChat(fake.appid, fake.secret, http_client=http) as wx:
        await wx.access_token()
    assert not http.is_closed
    await http.aclose()


async def test_own_http_client_has_a_large_keepalive_pool() -> None:
    # Every transport keeps each of its connections alive (tests/test_bulk.py checks each pool).
    async with AsyncWeChat("wxapp", "secret") as wx:
        assert wx._pipeline.max_connections == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"appid": ""}, "appid"),
        ({"secret": ""}, "secret"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"max_retries": -1}, "max_retries"),
        ({"token_endpoint": "magic"}, "token_endpoint"),
        ({"refresh_margin": -1}, "refresh_margin"),
    ],
)
def test_contradictory_configuration_is_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"appid": "wxapp", "secret": "s", **kwargs}
    with pytest.raises(ValueError, match=message):
        AsyncWeChat(**args)  # type: ignore[arg-type]


async def test_loopback_keeps_connections_alive(fake: FakeWeChat) -> None:
    with fake.serve() as server:
        async with AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url) as wx:
            for _ in range(20):
                await wx.kf.list()
        assert server.connections_made == 1


@pytest.mark.parametrize("value", [None, 0.5, httpx.Timeout(2.0)])
async def test_timeout_forms_are_accepted(fake: FakeWeChat, value: object) -> None:
    async with fake.client(timeout=value) as wx:
        assert await wx.kf.list() == []


@pytest.mark.parametrize("timeout", [0, -1, "10", True])
def test_bad_timeouts_are_refused(timeout: object) -> None:
    with pytest.raises(ValueError, match="timeout"):
        AsyncWeChat("wxapp", "secret", timeout=timeout)  # type: ignore[arg-type]


# ---------------------------------------------------------------- HTTP status, timeouts, base URL

STABLE = "/cgi-bin/stable_token"


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_http_4xx_is_an_http_error_and_never_retried(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder, status: int
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, status=status, times=3)
    with pytest.raises(HTTPStatusError) as info:
        await wx.kf.list()
    error = info.value
    assert (error.status_code, error.method, error.path) == (status, "GET", KF_LIST)
    assert str(error) == f"GET {KF_LIST}: HTTP {status}"
    assert error.may_have_reached_wechat is True
    assert len(fake.requests_to(KF_LIST)) == 1
    assert sleeps.delays == []


async def test_a_callers_http_client_keeps_its_own_timeout(fake: FakeWeChat) -> None:
    # No timeout= given: the client's own timeout applies (never "no timeout at all").
    http = fake.http_client(timeout=0.05)
    async with AsyncWeChat(fake.appid, fake.secret, http_client=http, max_retries=0) as wx:
        await wx.access_token()
        fake.inject(KF_LIST, delay=5.0)
        with pytest.raises(ResponseTimeoutError):
            await wx.kf.list()
    await http.aclose()


async def test_timeout_none_waits_for_a_late_answer(fake: FakeWeChat) -> None:
    # timeout=None is httpx's "no timeout": it overrides the caller's client's own.
    http = fake.http_client(timeout=0.01)
    async with AsyncWeChat(fake.appid, fake.secret, http_client=http, timeout=None) as wx:
        await wx.access_token()
        fake.inject(KF_LIST, delay=0.1)
        assert await wx.kf.list() == []
    await http.aclose()


async def test_with_options_timeout_applies_to_the_copy_and_the_copies_of_it(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    await wx.access_token()
    hasty = wx.with_options(timeout=0.05, max_retries=0)
    for client in (hasty, hasty.with_options(max_retries=0)):  # a copy keeps the timeout
        fake.inject(KF_LIST, delay=5.0)
        with pytest.raises(ResponseTimeoutError) as info:
            await client.kf.list()
        assert info.value.may_have_reached_wechat is True
    fake.inject(KF_LIST, delay=0.1)
    assert await wx.kf.list() == []  # the original keeps its 10 s
    assert len(fake.requests_to(KF_LIST)) == 3


async def test_a_client_timeout_is_kept_by_its_copies(fake: FakeWeChat) -> None:
    async with fake.client(timeout=0.05, max_retries=0) as wx:
        await wx.access_token()
        fake.inject(KF_LIST, delay=5.0)
        with pytest.raises(ResponseTimeoutError):
            await wx.with_options(max_retries=0).kf.list()


class _Gateway(httpx.AsyncBaseTransport):
    """A reverse proxy that serves WeChat's API under ``prefix`` (here: the fake, in-process)."""

    def __init__(self, fake: FakeWeChat, prefix: str) -> None:
        self.inner = fake.transport()
        self.prefix = prefix
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if not request.url.path.startswith(self.prefix + "/"):
            return httpx.Response(404, request=request)
        upstream = httpx.Request(
            request.method,
            request.url.copy_with(path=request.url.path.removeprefix(self.prefix)),
            headers=request.headers,
            content=await request.aread(),
            extensions=request.extensions,
        )
        return await self.inner.handle_async_request(upstream)


@pytest.mark.parametrize("slashes", ["", "/", "//"])
async def test_a_base_url_may_end_with_slashes_and_keeps_its_path(
    fake: FakeWeChat, slashes: str
) -> None:
    gateway = _Gateway(fake, "/WX")
    http = httpx.AsyncClient(transport=gateway)
    base_url = "https://gateway.example.com/WX" + slashes
    async with AsyncWeChat(fake.appid, fake.secret, http_client=http, base_url=base_url) as wx:
        assert await wx.kf.list() == []
    assert gateway.paths == ["/WX" + STABLE, "/WX" + KF_LIST]
    await http.aclose()


async def test_a_base_url_with_a_trailing_slash_on_loopback(fake: FakeWeChat) -> None:
    with fake.serve() as server:
        async with AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url + "/") as wx:
            assert await wx.kf.list() == []
    assert [request.path for request in fake.requests] == [STABLE, KF_LIST]


# ---------------------------------------------------------------- token recovery, logs

MEDIA_GET = "/cgi-bin/media/get"


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_a_rejected_token_is_refreshed_once_and_the_call_sent_again(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder, errcode: int
) -> None:
    first = await wx.access_token()
    fake.invalidate_tokens()
    fake.inject(KF_LIST, errcode=errcode)
    assert await wx.kf.list() == []
    requests = fake.requests_to(KF_LIST)
    assert len(requests) == 2
    assert requests[0].query["access_token"] == first
    assert requests[1].query["access_token"] != first
    assert len(fake.token_requests) == 2
    assert sleeps.delays == []  # a recovery is no retry: no wait, no retry spent


async def test_a_token_rejected_again_after_the_refresh_is_the_callers_error(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    await wx.access_token()
    fake.invalidate_tokens()
    fake.inject(KF_LIST, errcode=42001, times=2)
    with pytest.raises(APIError) as info:
        await wx.kf.list()
    assert info.value.errcode == 42001
    assert len(fake.requests_to(KF_LIST)) == 2
    assert len(fake.token_requests) == 2
    assert sleeps.delays == []


async def test_other_errcodes_are_no_rejected_token(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.access_token()
    for errcode in (40002, 40013, 42002):
        fake.inject(KF_LIST, errcode=errcode)
        with pytest.raises(APIError) as info:
            await wx.kf.list()
        assert info.value.errcode == errcode
    assert len(fake.token_requests) == 1
    assert len(fake.requests_to(KF_LIST)) == 3


async def test_what_the_pipeline_logs(
    fake: FakeWeChat, caplog: pytest.LogCaptureFixture, sleeps: SleepRecorder
) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="wechat_kf")
    exact = RetryPolicy(jitter=1.0)
    async with fake.client(sleep=sleeps, retry=exact) as wx:
        await wx.access_token()
        caplog.clear()
        fake.inject(KF_LIST, errcode=40001)
        fake.inject(KF_LIST, errcode=-1, errmsg="system busy")
        await wx.kf.list()
    messages = [r.getMessage() for r in caplog.records if r.name == "wechat_kf"]
    assert messages[0].startswith(f"GET {KF_LIST}: HTTP 200 in ")
    assert messages[0].endswith(" ms")
    assert messages[1] == f"GET {KF_LIST}: token rejected (errcode 40001), refreshing once"
    retry = next(m for m in messages if " failed (" in m)
    assert retry.startswith(f"GET {KF_LIST} failed (errcode -1: system busy rid: ")
    assert retry.endswith("); retry 1/2 in 0.50 s")
    assert [r.levelname for r in caplog.records if "retry 1/2" in r.getMessage()] == ["INFO"]


# ---------------------------------------------------------------- bodies, queries, headers


async def test_a_body_is_json_with_its_content_type_a_get_has_neither(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    await wx.kf.add("kf_1@service", "Ann")
    await wx.kf.list()
    (add,) = fake.requests_to(ADD)
    (get,) = fake.requests_to(KF_LIST)
    assert add.headers["content-type"] == "application/json"
    assert "content-type" not in get.headers
    assert get.body == b""
    assert add.raw_query.startswith("access_token=")
    assert get.raw_query == f"access_token={get.query['access_token']}"


async def test_a_body_encoded_beforehand_is_sent_as_it_is(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    fake.user_says("user-1")
    report = await wx.message.send_many(["user-1"], Text(content="hi"))
    assert report.sent == 1
    (request,) = fake.requests_to(SEND)
    assert request.body == b'{"touser":"user-1","msgtype":"text","text":{"content":"hi"}}'
    assert request.headers["content-type"] == "application/json"


async def test_errmsg_is_redacted_and_a_missing_one_is_empty(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, malformed=b'{"errcode":45009,"errmsg":"quota; access_token=XYZ"}')
    with pytest.raises(APIError) as info:
        await wx.kf.list()
    assert info.value.errmsg == "quota; access_token=***"
    fake.inject(KF_LIST, malformed=b'{"errcode":45009,"errmsg":123}')
    with pytest.raises(APIError) as info:
        await wx.kf.list()
    assert info.value.errmsg == ""


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"[1, 2]", b'{"errcode": true}'])
async def test_a_malformed_answer_is_never_retried(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder, body: bytes
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, malformed=body, times=3)
    with pytest.raises(MalformedResponseError):
        await wx.kf.list()
    assert len(fake.requests_to(KF_LIST)) == 1
    assert sleeps.delays == []


def test_malformed_texts() -> None:
    from wechat_kf._pipeline import decode_body, errcode_of

    with pytest.raises(MalformedResponseError) as info:
        decode_body(b"<html>" + b"x" * 300)
    assert str(info.value) == "response is not JSON: " + repr("<html>" + "x" * 194)
    assert info.value.body_excerpt == "<html>" + "x" * 194  # the first 200 bytes
    with pytest.raises(MalformedResponseError) as info:
        decode_body(b"[1]")
    assert str(info.value) == "response is not a JSON object: '[1]'"
    assert errcode_of({}) == 0
    assert errcode_of({"errcode": " -1 "}) == -1
    for bad, kind in [(True, "bool"), (None, "NoneType"), ("4e1", "str"), (1.0, "float")]:
        with pytest.raises(MalformedResponseError) as info:
            errcode_of({"errcode": bad})
        assert str(info.value) == f"errcode is not an integer: {kind}"


def test_a_lone_surrogate_is_refused_before_the_network() -> None:
    from wechat_kf import ValidationError
    from wechat_kf._pipeline import encode_json

    with pytest.raises(ValidationError) as info:
        encode_json({"a": "x\ud800"})
    assert info.value.field == "body"
    assert info.value.limit == "must be valid Unicode text: surrogates not allowed at position 7"
    assert info.value.__suppress_context__


# ---------------------------------------------------------------- transport failures


class _Failing(httpx.AsyncBaseTransport):
    """A caller's transport that fails with ``error`` (a proxy library's bug, say)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "cls", "detail", "retried"),
    [
        (httpx.ConnectTimeout("slow"), ConnectFailedError, "ConnectTimeout: slow", True),
        (httpx.PoolTimeout("full"), ConnectFailedError, "PoolTimeout: full", True),
        (httpx.ReadTimeout("late"), ResponseTimeoutError, "ReadTimeout: late", True),
        (httpx.WriteTimeout("stuck"), ResponseTimeoutError, "WriteTimeout: stuck", True),
        (
            httpx.LocalProtocolError("bad header"),
            RequestBuildError,
            "LocalProtocolError: bad header",
            False,
        ),
        (
            httpx.RemoteProtocolError("garbage"),
            ConnectionLostError,
            "RemoteProtocolError: garbage",
            True,
        ),
        (httpx.ReadError("reset"), ConnectionLostError, "ReadError: reset", True),
        (
            ValueError("bug access_token=XYZ"),
            TransportError,
            "builtins.ValueError: bug access_token=***",
            True,
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
async def test_each_client_failure_is_typed(
    fake: FakeWeChat,
    sleeps: SleepRecorder,
    error: Exception,
    cls: type[TransportError],
    detail: str,
    retried: bool,
) -> None:
    failing = _Failing(error)
    http = httpx.AsyncClient(transport=failing)
    token = fake.issue_token()
    store = MemoryTokenStore()
    await store.set(fake.appid, AccessToken(token, time.time() + 3600))
    async with AsyncWeChat(
        fake.appid, fake.secret, http_client=http, token_store=store, sleep=sleeps
    ) as wx:
        with pytest.raises(TransportError) as info:
            await wx.kf.list()
    await http.aclose()
    assert type(info.value) is cls
    assert (info.value.method, info.value.path) == ("GET", KF_LIST)
    text = str(info.value)
    assert text == f"GET {KF_LIST}: {detail}"
    assert "XYZ" not in text
    assert token not in text
    assert failing.calls == (3 if retried else 1)


async def test_the_direct_path_names_the_request_without_its_query(
    fake: FakeWeChat, transport: str
) -> None:
    fake.user_says("user-1")
    with fake.serve() as server:
        async with loopback_client(fake, server, transport) as wx:
            await wx.access_token()
            fake.inject(SEND, reset=True)
            with pytest.raises(ConnectionLostError) as info:
                await wx.message.send("user-1", Text(content="hi"))
    assert len(fake.requests_to(SEND)) == 1
    url = server.base_url + SEND
    cause = info.value.__cause__
    assert isinstance(cause, httpx.TransportError)
    assert str(cause.request.url) == (url if transport != OWN_HTTPX else url + "?access_token=***")
    assert info.value.__context__ is None


@pytest.mark.parametrize("where", ["in-process", "loopback"])
async def test_a_closed_client_says_so_and_sends_nothing(fake: FakeWeChat, where: str) -> None:
    from wechat_kf import ClientClosedError

    with fake.serve() as server:
        if where == "loopback":
            wx = AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url)
        else:
            wx = fake.client()
        async with wx:
            await wx.access_token()
        before = len(fake.requests)
        with pytest.raises(ClientClosedError) as info:
            await wx.kf.list()
    assert str(info.value) == (
        f"GET {KF_LIST}: the client is closed (aclose() was called, or the owner of its "
        "httpx.AsyncClient closed it); nothing was sent. Keep one client open for the "
        "application's lifetime and close it once at shutdown"
    )
    assert info.value.__context__ is None
    assert len(fake.requests) == before


async def test_a_callers_client_has_no_pool_of_ours(fake: FakeWeChat) -> None:
    async with fake.client() as wx:
        assert wx._pipeline.max_connections is None
        assert wx._pipeline.ensure_connections(50) is None
    async with AsyncWeChat("wxapp", "secret", max_connections=7) as own:
        assert own._pipeline.max_connections == 7
        assert own._pipeline.ensure_connections(9) == 9
        assert own.with_options(timeout=3)._pipeline.max_connections == 9  # the same pool


# ---------------------------------------------------------------- answers that may be files


@pytest.mark.parametrize(
    ("headers", "is_file"),
    [
        ({}, False),
        ({"Content-Type": "application/json"}, False),
        ({"Content-Type": "Application/JSON; charset=utf-8"}, False),
        ({"Content-Type": "text/plain"}, False),
        ({"Content-Type": " TEXT/html ;x=y"}, False),
        ({"Content-Type": "application/problem+json"}, False),
        ({"Content-Type": "image/jpeg"}, True),
        ({"Content-Type": "application/octet-stream"}, True),
        ({"Content-Type": "application/jsonp"}, True),
        ({"Content-Type": "xtext/plain"}, True),
        ({"Content-Type": "application/json", "Content-Disposition": "attachment"}, True),
        ({"Content-Type": "text/plain", "Content-Disposition": 'inline; FILENAME="a.txt"'}, True),
        ({"Content-Type": "text/plain", "Content-Disposition": "Attachment"}, True),
        ({"Content-Type": "text/plain", "Content-Disposition": "inline"}, False),
    ],
)
def test_what_makes_an_answer_a_file(headers: dict[str, str], is_file: bool) -> None:
    from wechat_kf._pipeline import is_file_answer

    assert is_file_answer(httpx.Response(200, headers=headers)) is is_file


def _file_answer(headers: dict[str, bytes]) -> object:
    from wechat_kf._pipeline import Endpoint, FileAnswer

    return FileAnswer(httpx.Response(200, headers=headers), Endpoint("GET", MEDIA_GET))


@pytest.mark.parametrize(
    ("headers", "content_type", "filename", "size", "text"),
    [
        (
            {
                "Content-Type": "Image/JPEG; charset=x",
                "Content-Disposition": 'attachment; filename="M1.jpg"',
                "Content-Length": "1234",
            },
            "image/jpeg",
            "M1.jpg",
            1234,
            "<FileAnswer image/jpeg 1234 bytes>",
        ),
        (
            {"Content-Disposition": "attachment; filename*=UTF-8''%E5%9B%BE.png"},
            "",
            "图.png",
            None,
            "<FileAnswer ? ? bytes>",
        ),
        ({"Content-Disposition": "attachment", "Content-Length": "１２"}, "", None, None, None),
        ({"Content-Length": "12a"}, "", None, None, None),
        ({"Content-Disposition": "", "Content-Length": "-1"}, "", None, None, None),
        ({"Content-Length": "0"}, "", None, 0, "<FileAnswer ? ? bytes>"),
    ],
)
def test_a_file_answer_says_what_it_is(
    headers: dict[str, str],
    content_type: str,
    filename: str | None,
    size: int | None,
    text: str | None,
) -> None:
    answer: Any = _file_answer({k: v.encode() for k, v in headers.items()})
    assert (answer.content_type, answer.filename, answer.size) == (content_type, filename, size)
    if text is not None:
        assert repr(answer) == text


async def test_a_json_answer_of_a_file_endpoint_is_read_up_to_1_mib(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    from wechat_kf import InvalidMediaIdError

    held = fake.add_media("image")
    error = b'{"errcode":40007,"errmsg":"invalid media_id"}'
    fake.inject(MEDIA_GET, malformed=error + b" " * (1024 * 1024 - len(error)))  # 1 MiB exactly
    with pytest.raises(InvalidMediaIdError):
        await wx.media.download(held.media_id)
    fake.inject(MEDIA_GET, malformed=error + b" " * (1024 * 1024 + 1 - len(error)), times=3)
    with pytest.raises(MalformedResponseError) as info:
        await wx.media.download(held.media_id)
    assert str(info.value).startswith(
        "a text/plain answer of more than 1048576 bytes is neither JSON nor a "
        'file: \'{"errcode":40007'
    )
    assert len(fake.requests_to(MEDIA_GET)) == 2  # malformed: never retried


async def test_a_file_answer_is_streamed_read_once_and_closed(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    from wechat_kf._pipeline import Endpoint, FileAnswer

    held = fake.add_media("image")
    get = Endpoint("GET", MEDIA_GET)
    async with wx._pipeline.stream(get, query={"media_id": held.media_id}) as answer:
        assert isinstance(answer, FileAnswer)
        chunks = [chunk async for chunk in answer.iter_bytes(7)]
        assert b"".join(chunks) == held.data
        assert {len(chunk) for chunk in chunks[:-1]} == {7}
    async with wx._pipeline.stream(get, query={"media_id": held.media_id}) as answer:
        assert isinstance(answer, FileAnswer)
        assert await answer.read() == held.data
    async with wx._pipeline.stream(get, query={"media_id": held.media_id}) as answer:
        assert isinstance(answer, FileAnswer)
        started = answer.iter_bytes(1)
        assert await started.__anext__() == held.data[:1]
    with pytest.raises(StopAsyncIteration):  # closed with its answer
        await started.__anext__()


async def test_a_file_cut_short_is_typed_and_unchained(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    held = fake.add_media("image")
    # Cut while streaming (in-process) or while the transport read it whole (loopback: retried).
    fake.inject(MEDIA_GET, truncate=True, times=3)
    with pytest.raises(ConnectionLostError) as info:
        await wx.media.download(held.media_id)
    assert (info.value.method, info.value.path) == ("GET", MEDIA_GET)
    assert info.value.__context__ is None


async def test_a_json_answer_cut_short_is_typed_and_unchained(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    held = fake.add_media("image")
    fake.inject(MEDIA_GET, errcode=45009, truncate=True, times=3)
    with pytest.raises(ConnectionLostError) as info:
        await wx.media.download(held.media_id)
    assert info.value.__context__ is None
    assert len(fake.requests_to(MEDIA_GET)) == 3  # a read: retried


async def test_a_url_holding_the_token_is_never_redirected(fake: FakeWeChat) -> None:
    held = fake.add_media("image")
    elsewhere = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    async with fake.client(max_retries=0) as wx:
        await wx.access_token()
        fake.inject(MEDIA_GET, raw=elsewhere)
        with pytest.raises(MalformedResponseError):
            await wx.media.download(held.media_id)
    assert fake.requests_to("/elsewhere") == []


async def test_an_http_error_of_a_file_endpoint_is_typed_and_retried(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    held = fake.add_media("image")
    fake.inject(MEDIA_GET, status=503, retry_after="2")
    assert await wx.media.download(held.media_id) == held.data
    assert sleeps.delays == [2.0]
    fake.inject(MEDIA_GET, status=404)
    with pytest.raises(HTTPStatusError) as info:
        await wx.media.download(held.media_id)
    assert info.value.status_code == 404


async def test_a_streamed_body_read_twice_is_the_sdks_error(fake: FakeWeChat) -> None:
    from wechat_kf._pipeline import Endpoint, FileAnswer

    held = fake.add_media("image")
    with fake.serve() as server:
        async with loopback_client(fake, server, OWN_HTTPX) as wx:  # httpx streams the body
            get = Endpoint("GET", MEDIA_GET)
            async with wx._pipeline.stream(get, query={"media_id": held.media_id}) as answer:
                assert isinstance(answer, FileAnswer)
                assert await answer.read() == held.data
                with pytest.raises(TransportError) as info:
                    await answer.read()
    assert type(info.value) is TransportError
    assert str(info.value) == (
        f"GET {MEDIA_GET}: the answer's body was already read or closed (StreamConsumed): "
        "read it once, inside its async with block"
    )
    assert info.value.__context__ is None


def test_copies_share_the_event_loop_their_client_is_bound_to(fake: FakeWeChat) -> None:
    from wechat_kf import EventLoopChangedError

    wx = fake.client()
    copy = wx.with_options(timeout=5)

    async def first() -> None:
        assert await copy.kf.list() == []  # the copy's first call binds the client

    async def second() -> None:
        with pytest.raises(EventLoopChangedError) as info:
            await wx.kf.list()
        assert str(info.value).startswith(
            f"GET {KF_LIST}: this client made its first call in another event loop"
        )
        with pytest.raises(EventLoopChangedError):
            await copy.with_options(max_retries=0).kf.list()

    anyio.run(first)
    anyio.run(second)


async def test_an_upload_goes_through_the_client_with_its_form(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    from wechat_kf.testing import sample_media

    media = await wx.media.upload(sample_media("image"), "image")
    (request,) = fake.requests_to("/cgi-bin/media/upload")
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="media"; filename="image.jpg"' in request.body
    assert sample_media("image") in request.body
    assert media.media_id == fake.uploads[0].media_id


class _Parts(httpx.AsyncByteStream):
    def __init__(self, parts: list[bytes], error: Exception | None) -> None:
        self.parts = parts
        self.error = error

    async def __aiter__(self) -> Any:
        for part in self.parts:
            yield part
        if self.error is not None:
            raise self.error


class _Streaming(httpx.AsyncBaseTransport):
    """The fake, except that media downloads stream these parts (then fail with ``error``)."""

    def __init__(
        self,
        fake: FakeWeChat,
        parts: list[bytes],
        headers: dict[str, str],
        error: Exception | None = None,
    ) -> None:
        self.inner = fake.transport()
        self.parts, self.headers, self.error = parts, headers, error

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != MEDIA_GET:
            return await self.inner.handle_async_request(request)
        stream = _Parts(self.parts, self.error)
        return httpx.Response(200, headers=self.headers, stream=stream, request=request)


async def _download(transport: _Streaming, fake: FakeWeChat) -> bytes:
    http = httpx.AsyncClient(transport=transport)
    try:
        async with AsyncWeChat(fake.appid, fake.secret, http_client=http, max_retries=0) as wx:
            return await wx.media.download("M1")
    finally:
        await http.aclose()


async def test_a_file_in_parts_is_read_whole(fake: FakeWeChat) -> None:
    parts = [b"\xff\xd8", b"\xff" * 3, b"end"]
    streaming = _Streaming(fake, parts, {"Content-Type": "image/jpeg"})
    assert await _download(streaming, fake) == b"".join(parts)


async def test_a_json_answer_in_parts_is_bounded_by_its_total(
    fake: FakeWeChat, anyio_backend: str
) -> None:
    from wechat_kf import InvalidMediaIdError

    if anyio_backend == "trio":
        pytest.skip(
            "a streamed body abandoned past the limit leaves httpx's inner body generators to "
            "the garbage collector, and trio warns (ResourceWarning): known, not yet fixed"
        )

    error = b'{"errcode":40007,"errmsg":"invalid media_id"}'
    half = 512 * 1024
    exact = [error + b" " * (half - len(error)), b" " * half]  # 1 MiB in two parts
    with pytest.raises(InvalidMediaIdError):
        await _download(_Streaming(fake, exact, {}), fake)
    with pytest.raises(MalformedResponseError) as info:
        await _download(_Streaming(fake, [*exact, b" "], {}), fake)
    assert str(info.value).startswith(
        "a untyped answer of more than 1048576 bytes is neither JSON nor a file: '{"
    )


async def test_a_failure_of_anything_else_while_reading_is_typed(fake: FakeWeChat) -> None:
    failing = _Streaming(
        fake, [b"\xff\xd8"], {"Content-Type": "image/jpeg"}, RuntimeError("boom secret=S")
    )
    with pytest.raises(TransportError) as info:
        await _download(failing, fake)
    assert type(info.value) is TransportError
    assert str(info.value) == f"GET {MEDIA_GET}: builtins.RuntimeError: boom secret=***"
    assert info.value.__context__ is None


async def test_a_download_link_is_followed_through_redirects_without_the_token(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    from wechat_kf.testing._media_routes import VIDEO_LINK_PATH

    held = fake.add_media("video")
    url = await wx.media.video_url(held.media_id)
    query = url.partition("?")[2]
    moved = (
        f"HTTP/1.1 302 Found\r\nLocation: {VIDEO_LINK_PATH}?{query}\r\nContent-Length: 0\r\n\r\n"
    )
    fake.inject(VIDEO_LINK_PATH, raw=moved)
    assert await wx.media.download(held.media_id) == held.data
    links = fake.requests_to(VIDEO_LINK_PATH)
    assert [link.raw_query for link in links] == [query, query]  # the link's query, as it is
    assert [link.access_token for link in links] == [None, None]


async def test_a_download_keeps_the_timeout(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    held = fake.add_media("image")
    await wx.access_token()
    fake.inject(MEDIA_GET, delay=5.0)
    with pytest.raises(ResponseTimeoutError):
        await wx.with_options(timeout=0.05, max_retries=0).media.download(held.media_id)


async def test_a_call_decodes_json_whatever_the_content_type(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    await wx.access_token()
    body = b'{"kf_list":[]}'
    fake.inject(
        KF_LIST,
        raw=b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    assert await wx.kf.list() == []


async def test_a_40001_of_the_token_endpoint_is_the_configuration(fake: FakeWeChat) -> None:
    from wechat_kf import ConfigurationError, TokenFetchError

    async with fake.client(max_retries=0) as wx:
        fake.inject("/cgi-bin/stable_token", errcode=40001, errmsg="invalid credential")
        with pytest.raises((ConfigurationError, TokenFetchError)) as info:
            await wx.access_token()
    error = info.value
    cause = error if isinstance(error, ConfigurationError) else error.__cause__
    assert type(cause) is ConfigurationError
    assert "invalid appsecret" in str(cause)


async def test_only_a_strict_write_takes_busy_for_maybe_done(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    fake.user_says("user-1")
    fake.inject(KF_LIST, errcode=-1, times=3)
    with pytest.raises(ServerBusyError) as read:
        await wx.kf.list()
    assert read.value.may_have_reached_wechat is False
    fake.inject(SEND, errcode=-1, times=3)
    with pytest.raises(ServerBusyError) as write:
        await wx.message.send("user-1", Text(content="hi"))
    assert write.value.may_have_reached_wechat is False
    fake.inject(SEND, errcode=45047)
    with pytest.raises(APIError) as refused:
        await wx.message.send("user-1", Text(content="hi"), busy_is_unknown=True)
    assert refused.value.may_have_reached_wechat is False  # refused: nothing was done


async def test_a_transport_retry_is_logged(
    fake: FakeWeChat, caplog: pytest.LogCaptureFixture, sleeps: SleepRecorder
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="wechat_kf")
    async with fake.client(sleep=sleeps, retry=RetryPolicy(jitter=1.0)) as wx:
        await wx.access_token()
        fake.inject(KF_LIST, reset=True)
        await wx.kf.list()
    (retry,) = [r.getMessage() for r in caplog.records if " failed (" in r.getMessage()]
    assert retry == (
        f"GET {KF_LIST} failed (GET {KF_LIST}: ReadError: [Errno 104] Connection reset "
        "(injected)); retry 1/2 in 0.50 s"
    )

"""No access token, appsecret or AES key in any repr, log record, exception text or URL."""

from __future__ import annotations

import logging
import traceback

import pytest

from wechat_kf import AccessToken, MemoryTokenStore, Text, WeChatError
from wechat_kf._redaction import get_logger, install_log_redaction, redact
from wechat_kf.testing import FakeWeChat

from .conftest import OWN_HTTPX, sdk_client

pytestmark = pytest.mark.anyio

SECRET = "fake-app-secret"


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("endpoint", ["stable", "classic"])
async def test_logs_never_hold_the_token_or_secret(
    fake: FakeWeChat, caplog: pytest.LogCaptureFixture, endpoint: str, transport: str
) -> None:
    caplog.set_level(logging.DEBUG)
    with fake.serve() as server:
        async with sdk_client(
            fake.appid, SECRET, transport, base_url=server.base_url, token_endpoint=endpoint
        ) as wx:
            token = await wx.access_token()
            await wx.kf.list()
            fake.invalidate_tokens()
            await wx.kf.list()
            new_token = await wx.access_token()
    logged = _everything_logged(caplog)
    assert "GET /cgi-bin/customservice/getkflist: HTTP 200 in" in logged
    if transport == OWN_HTTPX:  # through httpx.AsyncClient.request: httpx logs each request
        assert "HTTP Request: GET" in logged  # httpx's INFO line was emitted...
        assert "access_token=***" in logged  # ...and redacted
    else:  # the SDK's own transports are called directly: no httpx request objects, no line
        assert "HTTP Request:" not in logged
    assert token not in logged
    assert new_token not in logged
    assert SECRET not in logged


async def test_exceptions_never_hold_the_token(fake: FakeWeChat) -> None:
    async with fake.client(timeout=0.05, max_retries=0) as wx:
        token = await wx.access_token()
        fake.inject("/cgi-bin/customservice/getkflist", delay=1)
        with pytest.raises(WeChatError) as info:
            await wx.kf.list()
    text = "".join(traceback.format_exception(info.value))
    assert token not in text
    cause = info.value.__cause__
    assert cause is not None
    assert token not in str(cause.request.url)  # type: ignore[attr-defined]
    assert "access_token=***" in str(cause.request.url)  # type: ignore[attr-defined]


async def test_reprs_show_no_secret(fake: FakeWeChat) -> None:
    store = MemoryTokenStore()
    async with fake.client(token_store=store) as wx:
        token = await wx.access_token()
        texts = [repr(wx), repr(wx.tokens), repr(store), repr(await store.get(fake.appid))]
        texts += [repr(wx.kf), repr(wx.tokens._fetch), str(vars(wx.tokens).get("_fetch"))]
    assert repr(wx) == f"AsyncWeChat(appid={fake.appid!r})"
    for text in texts:
        assert token not in text
        assert SECRET not in text
    assert "***" in repr(AccessToken(token, 0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://x/y?access_token=abc.def-1&b=2", "https://x/y?access_token=***&b=2"),
        ("GET /cgi-bin/token?appid=wx1&secret=s3cr3t", "GET /cgi-bin/token?appid=wx1&secret=***"),
        ('{"appid":"wx1","secret":"s\\"3"}', '{"appid":"wx1","secret":"***"}'),
        (
            '{"access_token": "T", "expires_in": 7200}',
            '{"access_token": "***", "expires_in": 7200}',
        ),
        ("encoding_aes_key=abc", "encoding_aes_key=***"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "fault", [{"delay": 1.0}, {"reset": True, "processed": True}], ids=["timeout", "reset"]
)
async def test_whole_exception_chain_never_holds_the_token(
    fake: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    anyio_backend: str,
    transport: str,
    fault: dict[str, object],
) -> None:
    caplog.set_level(logging.DEBUG)
    with fake.serve() as server:
        async with sdk_client(
            fake.appid, SECRET, transport, base_url=server.base_url, timeout=0.2, max_retries=0
        ) as wx:
            token = await wx.access_token()
            fake.user_says("user-1")
            fake.inject("/cgi-bin/message/custom/send", **fault)  # type: ignore[arg-type]
            with pytest.raises(WeChatError) as info:
                await wx.message.send("user-1", Text(content="hi"))
    # Every exception in the chain, with its traceback, as a user's error reporter would see it.
    text = "".join(traceback.format_exception(info.value))
    seen: list[BaseException] = []
    error: BaseException | None = info.value
    while error is not None and error not in seen:
        seen.append(error)
        text += repr(error) + str(getattr(error, "request", ""))
        error = error.__cause__ or error.__context__
    assert token not in text
    assert SECRET not in text
    assert token not in _everything_logged(caplog)


def test_child_logger_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    # A filter on "wechat_kf" does not see records made on its children: each logger the package
    # makes carries the filter itself.
    import wechat_kf._tokens  # noqa: F401  (makes "wechat_kf.tokens")

    caplog.set_level(logging.DEBUG)
    logging.getLogger("wechat_kf.tokens").warning("GET /x?access_token=%s", "XYZ")
    logging.getLogger("wechat_kf.tokens").warning("GET /x?access_token=XYZ&b=1")
    get_logger("wechat_kf.some.child").info('{"access_token": "XYZ"}')
    assert "XYZ" not in caplog.text
    assert caplog.text.count("access_token=***") == 2
    assert '"access_token": "***"' in caplog.text


def test_install_log_redaction_covers_existing_child_loggers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = logging.getLogger("wechat_kf.made_with_plain_getlogger")
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    plain.warning("token: access_token=XYZ")
    assert "XYZ" not in caplog.text
    assert "access_token=***" in caplog.text


def test_a_token_cut_short_in_an_excerpt_is_redacted() -> None:
    from wechat_kf import MalformedResponseError
    from wechat_kf._pipeline import decode_body

    token = "T" * 300
    with pytest.raises(MalformedResponseError) as info:
        decode_body(b'{"access_token":"' + token.encode() + b'","expires_in":7200')
    assert "T" * 20 not in str(info.value)
    assert "access_token" in str(info.value)


# ---------------------------------------------------------------- redact(), each form


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("appsecret=abc&x=1", "appsecret=***&x=1"),
        ("EncodingAESKey=abc", "EncodingAESKey=***"),
        ("a?ACCESS_TOKEN=abc", "a?ACCESS_TOKEN=***"),
        ("access_token=abc#frag", "access_token=***#frag"),
        ("access_token=abc def", "access_token=*** def"),
        ('access_token=abc"x', 'access_token=***"x'),
        ("access_token=abc'x", "access_token=***'x"),
        ("my_access_token=abc", "my_access_token=abc"),  # another name: kept
        ("access_token=", "access_token="),  # nothing to hide
        ('{"encodingAESKey" : "k"}', '{"encodingAESKey" : "***"}'),
        ('{"appsecret":"s","x":"y"}', '{"appsecret":"***","x":"y"}'),
        ('{"secret":"a\\\\"}', '{"secret":"***"}'),  # an escaped backslash ends it
        ('{"access_token":"cut sho', '{"access_token":"***'),  # an excerpt cut short
        ('{"token":"T"}', '{"token":"T"}'),
        ("a" * 50, "a" * 50),
    ],
)
def test_redact_each_name_and_form(text: str, expected: str) -> None:
    assert redact(text) == expected


# ---------------------------------------------------------------- the log filter


def _record(msg: object, args: object) -> logging.LogRecord:
    return logging.LogRecord("wechat_kf", logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]


def test_the_filter_redacts_the_message_as_shown_and_keeps_clean_records() -> None:
    from wechat_kf._redaction import RedactingFilter

    record = _record("GET %s?access_token=%s", ("/x", "XYZ"))
    assert RedactingFilter().filter(record) is True
    assert (record.msg, record.args) == ("GET /x?access_token=***", ())
    clean = _record("GET %s in %d ms", ("/x", 5))
    assert RedactingFilter().filter(clean) is True
    assert (clean.msg, clean.args) == ("GET %s in %d ms", ("/x", 5))  # untouched


def test_the_filter_redacts_the_parts_when_the_arguments_do_not_fit() -> None:
    import httpx

    from wechat_kf._redaction import RedactingFilter

    url = httpx.URL("https://x/y?access_token=XYZ")
    record = _record("secret=S %s %s", ("access_token=XYZ", url, 3))  # too many: getMessage fails
    assert RedactingFilter().filter(record) is True
    assert record.msg == "secret=*** %s %s"
    assert record.args == ("access_token=***", "https://x/y?access_token=***", 3)
    clean_url = httpx.URL("https://x/y")
    record = _record("bad %d", (clean_url, "plain"))
    RedactingFilter().filter(record)
    assert record.args == (clean_url, "plain")
    assert record.args[0] is clean_url  # nothing to hide: the argument itself
    mapping = _record("%(a)s %(b)d", ({"a": "access_token=XYZ", "c": 7},))  # no "b"
    RedactingFilter().filter(mapping)
    assert mapping.args == {"a": "access_token=***", "c": 7}


def test_the_filter_is_attached_once() -> None:
    import uuid

    from wechat_kf._redaction import _FILTER

    name = f"wechat_kf.attached_once_{uuid.uuid4().hex}"  # a logger no earlier run made
    logger = get_logger(name)
    assert logger is logging.getLogger(name)
    get_logger(name)
    install_log_redaction()
    install_log_redaction()
    assert logger.filters.count(_FILTER) == 1
    for known in ("httpx", "wechat_kf"):  # taken off: install puts it back, once
        logging.getLogger(known).removeFilter(_FILTER)
        install_log_redaction()
        install_log_redaction()
        assert logging.getLogger(known).filters.count(_FILTER) == 1
    assert _FILTER not in logging.getLogger().filters  # the root logger is the app's
    plain = logging.getLogger(f"wechat_kf.plain_{uuid.uuid4().hex}")
    outsider = logging.getLogger(f"wechat_kf_other_{uuid.uuid4().hex}.child")  # not ours
    install_log_redaction()
    assert _FILTER in plain.filters
    assert _FILTER not in outsider.filters


# ---------------------------------------------------------------- scrubbed causes


def test_a_scrubbed_httpx_error_keeps_its_class_and_a_redacted_request() -> None:
    import httpx

    from wechat_kf._redaction import scrubbed

    request = httpx.Request("POST", "https://api.weixin.qq.com/send?access_token=XYZ&a=1")
    error = httpx.ReadTimeout("timed out for access_token=XYZ", request=request)
    copy = scrubbed(error)
    assert type(copy) is httpx.ReadTimeout
    assert str(copy) == "timed out for access_token=***"
    assert copy.request.method == "POST"  # type: ignore[attr-defined]
    assert str(copy.request.url) == "https://api.weixin.qq.com/send?access_token=***&a=1"  # type: ignore[attr-defined]
    assert (copy.__cause__, copy.__context__, copy.__traceback__) == (None, None, None)
    bare = scrubbed(httpx.ConnectError("refused"))  # no request attached
    assert type(bare) is httpx.ConnectError
    assert str(bare) == "refused"
    with pytest.raises(RuntimeError):
        bare.request  # type: ignore[attr-defined]  # noqa: B018


def test_anything_else_becomes_a_scrubbed_cause_naming_its_type() -> None:
    import pickle

    import httpx

    from wechat_kf._redaction import ScrubbedCause, scrubbed

    class Odd(httpx.ReadError):
        def __init__(self, code: int) -> None:  # another constructor than httpx's
            super().__init__(f"odd {code} access_token=XYZ")

    for error, text in [
        (ValueError("bad secret=S"), "builtins.ValueError: bad secret=***"),
        (KeyError(), "builtins.KeyError"),
        (Odd(7), f"{__name__}.{Odd.__qualname__}: odd 7 access_token=***"),
    ]:
        copy = scrubbed(error)
        assert type(copy) is ScrubbedCause
        assert str(copy) == text
        assert copy.original_type == text.partition(":")[0]
        again = pickle.loads(pickle.dumps(copy))
        assert (str(again), again.original_type) == (str(copy), copy.original_type)

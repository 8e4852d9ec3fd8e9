"""The framework-neutral endpoint: HTTP decisions, dedupe flow, failures (asyncio and trio)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from tests.callback.callback_fakes import APPID, KEY, NOW, TOKEN, FakeWeChat, event_push, text_push
from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    Deduplicator,
    HTTPAnswer,
    Incoming,
    KfCreateSession,
    Reply,
    TextMessage,
    TransferCustomerService,
)
from wechat_kf.callback._xml import parse_fields

pytestmark = pytest.mark.anyio

TEXT = "text/plain; charset=utf-8"
XML = "application/xml; charset=utf-8"


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Incoming] = []
        self.fail = fail

    async def __call__(self, incoming: Incoming) -> Reply | None:
        self.seen.append(incoming)
        if self.fail:
            raise RuntimeError("handler bug")
        if isinstance(incoming, TextMessage):
            return TransferCustomerService()
        return None


def endpoint(
    recorder: Recorder, *, key: str | None = None, dedupe: bool = True, **kwargs: object
) -> CallbackEndpoint:
    handler = CallbackHandler(
        token=TOKEN,
        appid=APPID,
        encoding_aes_key=key,
        **kwargs,  # type: ignore[arg-type]
    )
    return CallbackEndpoint(handler, recorder, deduplicator=Deduplicator() if dedupe else None)


async def test_url_check_answers_echostr() -> None:
    answer = await endpoint(Recorder()).answer("get", FakeWeChat().url_check("e-123"), b"")
    assert answer == HTTPAnswer(status=200, body=b"e-123", headers={"Content-Type": TEXT})
    assert answer.content_type == TEXT


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aes"])
async def test_message_in_transfer_out_then_session_event(key: str | None) -> None:
    recorder = Recorder()
    fake = FakeWeChat(encoding_aes_key=key)
    ep = endpoint(recorder, key=key)
    answer = await ep.answer("POST", *fake.push(text_push("人工")))
    assert (answer.status, answer.content_type) == (200, XML)
    plain = fake.open_reply(answer.body) if key else answer.body
    assert parse_fields(plain)["MsgType"] == "transfer_customer_service"
    answer = await ep.answer("POST", *fake.push(event_push("kf_create_session", KfAccount="a@b")))
    assert answer == HTTPAnswer(status=200, body=b"success", headers={"Content-Type": TEXT})
    assert [type(m) for m in recorder.seen] == [TextMessage, KfCreateSession]


async def test_retries_are_answered_success_without_calling_you_again() -> None:
    recorder = Recorder()
    ep = endpoint(recorder)
    request = FakeWeChat().push(text_push(msg_id=5))
    first = await ep.answer("POST", *request)
    assert b"transfer_customer_service" in first.body
    for _ in range(3):
        retry = await ep.answer("POST", *request)
        assert (retry.status, retry.body) == (200, b"success")
    assert len(recorder.seen) == 1


async def test_without_a_deduplicator_every_try_is_processed() -> None:
    recorder = Recorder()
    ep = endpoint(recorder, dedupe=False)
    request = FakeWeChat().push(text_push(msg_id=5))
    for _ in range(2):
        await ep.answer("POST", *request)
    assert len(recorder.seen) == 2


async def test_a_failing_handler_propagates_and_the_retry_is_processed() -> None:
    recorder = Recorder(fail=True)
    ep = endpoint(recorder)
    request = FakeWeChat().push(text_push(msg_id=6))
    with pytest.raises(RuntimeError, match="handler bug"):
        await ep.answer("POST", *request)
    recorder.fail = False
    answer = await ep.answer("POST", *request)
    assert b"transfer_customer_service" in answer.body
    assert len(recorder.seen) == 2


async def test_a_reply_wechat_would_refuse_is_a_bug_that_also_releases_the_key() -> None:
    async def transfer_everything(incoming: Incoming) -> Reply:
        return TransferCustomerService()

    handler = CallbackHandler(token=TOKEN, appid=APPID)
    dedupe = Deduplicator()
    ep = CallbackEndpoint(handler, transfer_everything, deduplicator=dedupe)
    request = FakeWeChat().push(event_push("subscribe"))
    with pytest.raises(ValueError, match="user messages only"):
        await ep.answer("POST", *request)
    assert not await dedupe.is_duplicate(handler.parse(*request))


@pytest.mark.parametrize(
    ("fake", "body", "status", "error"),
    [
        (FakeWeChat(token="otherToken"), text_push(), 403, "SignatureError"),
        (FakeWeChat(timestamp="100"), text_push(), 403, "StaleTimestampError"),
        (FakeWeChat(encoding_aes_key=KEY, appid="wxOther"), text_push(), 403, "AppIdMismatchError"),
        (FakeWeChat(), b"<!DOCTYPE x><xml/>", 400, "HostileXMLError"),
        (FakeWeChat(), b"<xml>", 400, "XMLParseError"),
        (FakeWeChat(), b"<xml><MsgType>text</MsgType></xml>", 400, "MalformedCallbackError"),
        (FakeWeChat(encoding_aes_key="Q" * 43), text_push(), 400, "DecryptError"),
        (FakeWeChat(), b"<xml>" + b" " * 5000 + b"</xml>", 413, "BodyTooLargeError"),
    ],
)
async def test_refusals_map_to_status_codes_and_are_logged(
    fake: FakeWeChat, body: bytes, status: int, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    ep = endpoint(recorder, key=KEY, timestamp_window=300, max_body_size=4096, clock=lambda: NOW)
    with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
        answer = await ep.answer("POST", *fake.push(body))
    assert answer.status == status
    assert answer.content_type == TEXT
    assert answer.body in (b"forbidden", b"bad request", b"payload too large")
    assert recorder.seen == []
    assert [r.getMessage().split(":")[1].strip() for r in caplog.records] == [error]
    assert TOKEN not in caplog.text
    assert KEY not in caplog.text


async def test_url_check_refusals() -> None:
    ep = endpoint(Recorder())
    query = FakeWeChat().url_check()
    del query["echostr"]
    assert (await ep.answer("GET", query, b"")).status == 400
    assert (await ep.answer("GET", FakeWeChat(token="otherTok").url_check(), b"")).status == 403


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD", "PATCH"])
async def test_other_methods_are_405(method: str) -> None:
    answer = await endpoint(Recorder()).answer(method, FakeWeChat().url_check(), b"")
    assert answer.status == 405
    assert answer.headers["Allow"] == "GET, POST"


async def test_streamed_bodies_are_read_up_to_the_cap_only() -> None:
    pulled: list[int] = []
    closed: list[bool] = []

    async def chunks(total: int) -> AsyncIterator[bytes]:
        try:
            for _ in range(total):
                pulled.append(1)
                yield b"x" * 1024
        finally:
            closed.append(True)

    ep = endpoint(Recorder(), max_body_size=4096)
    answer = await ep.answer("POST", FakeWeChat().push(b"")[0], chunks(1000))
    assert answer.status == 413
    assert len(pulled) == 5  # stopped right after crossing 4096 bytes
    assert closed == [True]

    async def body() -> AsyncIterator[bytes]:
        message = text_push("streamed")
        for i in range(0, len(message), 7):
            yield message[i : i + 7]

    recorder = Recorder()
    answer = await endpoint(recorder).answer("POST", FakeWeChat().push(b"")[0], body())
    assert answer.status == 200
    assert isinstance(recorder.seen[0], TextMessage)
    assert recorder.seen[0].content == "streamed"

"""The framework-neutral endpoint: HTTP decisions, dedupe flow, failures (asyncio and trio)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest

from tests.callback.callback_fakes import APPID, KEY, NOW, TOKEN, FakeWeChat, event_push, text_push
from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    Deduplicator,
    DuplicateStoreError,
    HTTPAnswer,
    Incoming,
    KfCreateSession,
    MemoryDuplicateStore,
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
    assert await dedupe.claim(handler.parse(*request)) is None


class Slow:
    """on_message whose first call blocks until released, then succeeds or fails."""

    def __init__(self, *, fail_first: bool) -> None:
        self.calls: list[Incoming] = []
        self.running = self.most_running = 0
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.fail_first = fail_first

    async def __call__(self, incoming: Incoming) -> Reply | None:
        self.calls.append(incoming)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if len(self.calls) == 1:
                self.entered.set()
                await self.release.wait()  # longer than WeChat's 5 s: it retries meanwhile
                if self.fail_first:
                    raise RuntimeError("failed after a long time")
            return TransferCustomerService()
        finally:
            self.running -= 1


def assert_busy(answer: HTTPAnswer) -> None:
    assert answer.status == 503  # not success: WeChat keeps retrying
    assert answer.body != b"success"
    assert answer.headers["Retry-After"] == "5"


async def test_a_retry_during_a_slow_success_is_503_then_success() -> None:
    slow = Slow(fail_first=False)
    ep = CallbackEndpoint(
        CallbackHandler(token=TOKEN, appid=APPID), slow, deduplicator=Deduplicator()
    )
    request = FakeWeChat().push(text_push(msg_id=7))
    answers: list[HTTPAnswer] = []

    async def first_try() -> None:
        answers.append(await ep.answer("POST", *request))

    async with anyio.create_task_group() as group:
        group.start_soon(first_try)
        await slow.entered.wait()
        for _ in range(2):
            assert_busy(await ep.answer("POST", *request))
        slow.release.set()
    assert b"transfer_customer_service" in answers[0].body
    retry = await ep.answer("POST", *request)  # marked done only now
    assert (retry.status, retry.body) == (200, b"success")
    assert len(slow.calls) == 1


async def test_a_slow_handler_that_fails_lets_the_next_retry_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = Slow(fail_first=True)
    ep = CallbackEndpoint(
        CallbackHandler(token=TOKEN, appid=APPID), slow, deduplicator=Deduplicator()
    )
    request = FakeWeChat().push(text_push(msg_id=8))
    failed: list[bool] = []

    async def first_try() -> None:
        with pytest.raises(RuntimeError, match="failed after a long time"):
            await ep.answer("POST", *request)
        failed.append(True)

    with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
        async with anyio.create_task_group() as group:
            group.start_soon(first_try)
            await slow.entered.wait()
            assert_busy(await ep.answer("POST", *request))  # neither acknowledged nor run twice
            slow.release.set()
    assert failed == [True]
    assert "still being handled" in caplog.text
    retry = await ep.answer("POST", *request)
    assert b"transfer_customer_service" in retry.body  # the push is not lost
    assert len(slow.calls) == 2
    assert slow.most_running == 1
    again = await ep.answer("POST", *request)
    assert (again.status, again.body) == (200, b"success")


async def test_a_crashed_worker_blocks_a_push_for_the_in_progress_ttl_only() -> None:
    now = [1000.0]
    dedupe = Deduplicator(MemoryDuplicateStore(clock=lambda: now[0]), in_progress_ttl=30)
    recorder = Recorder()
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    ep = CallbackEndpoint(handler, recorder, deduplicator=dedupe)
    request = FakeWeChat().push(text_push(msg_id=9))
    assert await dedupe.claim(handler.parse(*request)) is None  # a worker that then died
    assert_busy(await ep.answer("POST", *request))
    now[0] += 30
    assert b"transfer_customer_service" in (await ep.answer("POST", *request)).body
    assert len(recorder.seen) == 1


class BrokenStore(MemoryDuplicateStore):
    """Claims work; marking done and releasing fail, as Redis going away mid-push would."""

    async def mark_done(self, key: str, ttl: float) -> None:
        raise DuplicateStoreError("Redis SET failed: ConnectionError")

    async def forget(self, key: str) -> None:
        raise DuplicateStoreError("Redis DEL failed: ConnectionError")


async def test_store_failures_after_the_claim_keep_the_answer_and_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    ep = endpoint(recorder)
    assert ep.deduplicator is not None
    ep.deduplicator.store = BrokenStore()
    with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
        answer = await ep.answer("POST", *FakeWeChat().push(text_push(msg_id=10)))
        assert b"transfer_customer_service" in answer.body  # WeChat still gets the reply
        recorder.fail = True
        with pytest.raises(RuntimeError, match="handler bug"):  # not the store's error
            await ep.answer("POST", *FakeWeChat().push(text_push(msg_id=11)))
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "duplicate store: could not mark the push done: DuplicateStoreError: "
        "Redis SET failed: ConnectionError",
        "duplicate store: could not release the push: DuplicateStoreError: "
        "Redis DEL failed: ConnectionError",
    ]


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
    ep = endpoint(
        recorder,
        key=KEY,
        allow_plaintext=True,
        timestamp_window=300,
        max_body_size=4096,
        clock=lambda: NOW,
    )
    with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
        answer = await ep.answer("POST", *fake.push(body))
    assert answer.status == status
    assert answer.content_type == TEXT
    assert answer.body in (b"forbidden", b"bad request", b"payload too large")
    assert recorder.seen == []
    assert [r.getMessage().split(":")[1].strip() for r in caplog.records] == [error]
    assert TOKEN not in caplog.text
    assert KEY not in caplog.text


async def test_a_plaintext_push_to_a_safe_mode_endpoint_is_403(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The downgrade: a real encrypted push's query, without encrypt_type and msg_signature.
    query, _ = FakeWeChat(encoding_aes_key=KEY).push(text_push())
    del query["encrypt_type"], query["msg_signature"]
    forged = text_push("forged", msg_id=1)
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
        answer = await endpoint(recorder, key=KEY).answer("POST", query, forged)
    assert (answer.status, answer.body) == (403, b"forbidden")
    assert recorder.seen == []
    assert "PlaintextPushError" in caplog.text
    # the URL check stays plain-signed; allow_plaintext lets plaintext through while migrating
    safe = endpoint(recorder, key=KEY)
    assert (await safe.answer("GET", FakeWeChat().url_check("e-1"), b"")).body == b"e-1"
    migrating = endpoint(recorder, key=KEY, allow_plaintext=True)
    assert (await migrating.answer("POST", query, forged)).status == 200
    assert len(recorder.seen) == 1


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

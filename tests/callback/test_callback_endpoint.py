"""The framework-neutral endpoint: HTTP decisions, safe defaults, retries, failures (asyncio, trio)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator

import anyio
import pytest

from tests.callback.callback_fakes import (
    APPID,
    KEY,
    TOKEN,
    FakeWeChat,
    event_push,
    push_xml,
    text_push,
)
from wechat_kf import ValidationError
from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    Deduplicator,
    DuplicateEntry,
    DuplicateStoreError,
    HTTPAnswer,
    Incoming,
    KfCreateSession,
    MemoryDuplicateStore,
    Reply,
    TextMessage,
    TextReply,
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


def endpoint(recorder: Recorder, *, key: str | None = None, **kwargs: object) -> CallbackEndpoint:
    handler = CallbackHandler(
        token=TOKEN,
        appid=APPID,
        encoding_aes_key=key,
        **kwargs,  # type: ignore[arg-type]
    )
    return CallbackEndpoint(handler, recorder)


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


# --------------------------------------------------------------------------- safe defaults


async def test_replay_protection_is_on_by_default(caplog: pytest.LogCaptureFixture) -> None:
    # A push captured and re-sent 30 days later: refused without any option.
    recorder = Recorder()
    ep = CallbackEndpoint(CallbackHandler(token=TOKEN, appid=APPID), recorder)
    month_ago = str(int(time.time()) - 30 * 86400)
    replayed = FakeWeChat(timestamp=month_ago).push(text_push(msg_id=12))
    with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
        answer = await ep.answer("POST", *replayed)
    assert (answer.status, answer.body) == (403, b"forbidden")
    assert "StaleTimestampError" in caplog.text
    assert recorder.seen == []
    # timestamp_window=None is the explicit off switch (for tests of old recorded pushes)
    lenient = CallbackHandler(token=TOKEN, appid=APPID, timestamp_window=None)
    assert (await CallbackEndpoint(lenient, recorder).answer("POST", *replayed)).status == 200
    assert len(recorder.seen) == 1


async def test_every_endpoint_deduplicates_by_default() -> None:
    recorder = Recorder()
    ep = endpoint(recorder)
    assert isinstance(ep.deduplicator, Deduplicator)
    assert isinstance(ep.deduplicator.store, MemoryDuplicateStore)
    request = FakeWeChat().push(text_push(msg_id=5))
    for _ in range(4):  # the first try and WeChat's 3 retries
        await ep.answer("POST", *request)
    assert len(recorder.seen) == 1


async def test_a_store_is_one_argument_away() -> None:
    store = MemoryDuplicateStore()
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    ep = CallbackEndpoint(handler, Recorder(), deduplicator=store)
    assert ep.deduplicator.store is store
    await ep.answer("POST", *FakeWeChat().push(text_push(msg_id=5)))
    assert len(store) == 1
    dedupe = Deduplicator(store, ttl=600)
    assert CallbackEndpoint(handler, Recorder(), deduplicator=dedupe).deduplicator is dedupe


@pytest.mark.parametrize("bad", [-0.1, 5, 5.5, math.nan, math.inf, True, "4"])
def test_retry_wait_is_validated(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        CallbackEndpoint(CallbackHandler(token=TOKEN, appid=APPID), Recorder(), retry_wait=bad)  # type: ignore[arg-type]
    assert info.value.field == "retry_wait"
    assert CallbackEndpoint(CallbackHandler(token=TOKEN, appid=APPID), Recorder()).retry_wait == 4


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aes"])
async def test_every_retry_gets_the_first_answer_byte_for_byte(key: str | None) -> None:
    recorder = Recorder()
    ep = endpoint(recorder, key=key)
    fake = FakeWeChat(encoding_aes_key=key)
    request = fake.push(text_push(msg_id=5))
    first = await ep.answer("POST", *request)
    assert (first.status, first.content_type) == (200, XML)
    plain = fake.open_reply(first.body) if key else first.body
    assert parse_fields(plain)["MsgType"] == "transfer_customer_service"
    for _ in range(3):
        assert await ep.answer("POST", *request) == first  # status, body and headers
    event = fake.push(event_push("kf_create_session", KfAccount="a@b"))
    assert await ep.answer("POST", *event) == await ep.answer("POST", *event)
    assert len(recorder.seen) == 2


async def test_pushes_without_msg_id_are_deduplicated_by_user_and_time() -> None:
    recorder = Recorder()
    ep = endpoint(recorder)
    no_id = push_xml(
        {
            "ToUserName": "gh_account0001",
            "FromUserName": "oUser_openid_0000000000001",
            "CreateTime": 1_700_000_001,
            "MsgType": "text",
            "Content": "no MsgId here",
        }
    )
    request = FakeWeChat().push(no_id)
    first = await ep.answer("POST", *request)
    assert await ep.answer("POST", *request) == first
    later = FakeWeChat().push(no_id.replace(b"1700000001", b"1700000002"))
    await ep.answer("POST", *later)
    assert [m.raw["CreateTime"] for m in recorder.seen] == ["1700000001", "1700000002"]
    assert all(isinstance(m, TextMessage) and m.msg_id is None for m in recorder.seen)


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
            return TextReply(content=f"answer {len(self.calls)}")
        finally:
            self.running -= 1


class WatchedStore(MemoryDuplicateStore):
    """The memory store, telling the test how many claims reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0
        self.claimed = anyio.Event()

    async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
        self.claims += 1
        self.claimed.set()
        return await super().claim(key, ttl)

    async def claims_reach(self, count: int) -> None:
        while self.claims < count:
            self.claimed = anyio.Event()
            await self.claimed.wait()


def slow_endpoint(
    slow: Slow, key: str | None = None, **kwargs: float
) -> tuple[CallbackEndpoint, WatchedStore]:
    store = WatchedStore()
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key)
    return CallbackEndpoint(handler, slow, deduplicator=store, **kwargs), store


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "aes"])
async def test_a_retry_during_a_slow_push_waits_and_gets_its_reply(key: str | None) -> None:
    slow = Slow(fail_first=False)
    ep, store = slow_endpoint(slow, key)
    fake = FakeWeChat(encoding_aes_key=key)
    request = fake.push(text_push(msg_id=7))
    answers: list[HTTPAnswer] = []

    async def one_try() -> None:
        answers.append(await ep.answer("POST", *request))

    async with anyio.create_task_group() as group:
        group.start_soon(one_try)
        await slow.entered.wait()
        group.start_soon(one_try)  # WeChat's retry, 5 s later
        await store.claims_reach(2)
        assert answers == []  # the retry waits: no 503
        slow.release.set()
    first, retry = answers
    assert retry == first  # the same bytes: a reply is never lost to a retry
    plain = fake.open_reply(first.body) if key else first.body
    assert parse_fields(plain)["Content"] == "answer 1"
    assert await ep.answer("POST", *request) == first  # and every later retry
    assert len(slow.calls) == 1


async def test_a_retry_waiting_for_a_failing_try_handles_the_push_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = Slow(fail_first=True)
    ep, store = slow_endpoint(slow)
    request = FakeWeChat().push(text_push(msg_id=8))
    answers: list[HTTPAnswer] = []
    failed: list[bool] = []

    async def first_try() -> None:
        with pytest.raises(RuntimeError, match="failed after a long time"):
            await ep.answer("POST", *request)
        failed.append(True)

    async def retry() -> None:
        answers.append(await ep.answer("POST", *request))

    async with anyio.create_task_group() as group:
        group.start_soon(first_try)
        await slow.entered.wait()
        group.start_soon(retry)
        await store.claims_reach(2)
        slow.release.set()
    assert failed == [True]
    assert parse_fields(answers[0].body)["Content"] == "answer 2"  # the push is not lost
    assert len(slow.calls) == 2
    assert slow.most_running == 1  # never handled twice at once
    assert await ep.answer("POST", *request) == answers[0]


async def test_a_push_still_running_at_the_end_of_the_retrys_wait_is_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = Slow(fail_first=False)
    ep, _ = slow_endpoint(slow, retry_wait=0.05)
    request = FakeWeChat().push(text_push(msg_id=9))
    answers: list[HTTPAnswer] = []

    async def first_try() -> None:
        answers.append(await ep.answer("POST", *request))

    with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
        async with anyio.create_task_group() as group:
            group.start_soon(first_try)
            await slow.entered.wait()
            busy = await ep.answer("POST", *request)  # neither acknowledged nor run twice
            assert busy.status == 503
            assert busy.body != b"success"  # WeChat keeps trying
            assert busy.headers["Retry-After"] == "5"
            slow.release.set()
    assert "still being handled" in caplog.text
    assert await ep.answer("POST", *request) == answers[0]  # the next retry gets the reply
    assert len(slow.calls) == 1


async def test_a_crashed_worker_blocks_a_push_for_the_in_progress_ttl_only() -> None:
    now = [1000.0]
    dedupe = Deduplicator(MemoryDuplicateStore(clock=lambda: now[0]), in_progress_ttl=30)
    recorder = Recorder()
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    ep = CallbackEndpoint(handler, recorder, deduplicator=dedupe, retry_wait=0)
    request = FakeWeChat().push(text_push(msg_id=9))
    assert await dedupe.claim(handler.parse(*request)) is None  # a worker that then died
    assert (await ep.answer("POST", *request)).status == 503
    now[0] += 30
    assert b"transfer_customer_service" in (await ep.answer("POST", *request)).body
    assert len(recorder.seen) == 1


class BrokenStore(MemoryDuplicateStore):
    """Claims work; marking done and releasing fail, as Redis going away mid-push would."""

    async def mark_done(self, key: str, reply: bytes, ttl: float) -> None:
        raise DuplicateStoreError("Redis SET failed: ConnectionError")

    async def forget(self, key: str) -> None:
        raise DuplicateStoreError("Redis DEL failed: ConnectionError")


async def test_store_failures_after_the_claim_keep_the_answer_and_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    ep = CallbackEndpoint(
        CallbackHandler(token=TOKEN, appid=APPID), recorder, deduplicator=BrokenStore()
    )
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


async def test_a_store_that_cannot_claim_fails_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Neither processed (it may be a retry) nor acknowledged: a 500 for WeChat, which retries.
    class Down(MemoryDuplicateStore):
        async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
            raise DuplicateStoreError("Redis claim failed: ConnectionError")

    recorder = Recorder()
    ep = CallbackEndpoint(CallbackHandler(token=TOKEN, appid=APPID), recorder, deduplicator=Down())
    with pytest.raises(DuplicateStoreError):
        await ep.answer("POST", *FakeWeChat().push(text_push(msg_id=12)))
    assert recorder.seen == []


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
        max_body_size=4096,
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

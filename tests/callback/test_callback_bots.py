"""Bots that answer in time: the reply deadline, late delivery, typing, parts, failures, shutdown.

The framework-neutral core on asyncio and trio: ``CallbackEndpoint(wechat=...)`` against the
fake WeChat (in-process), on a VirtualClock, so that an 8-second handler runs in no time. The
same over real HTTP (uvicorn, aiohttp) is in test_callback_bots_http.py.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import AsyncIterator

import anyio
import pytest

from tests.callback.bot_fixtures import SEND, TYPING, Bot, running_bot
from tests.callback.callback_fakes import APPID, OPENID, TOKEN, event_push, text_push
from wechat_kf import (
    ConnectionLostError,
    Image,
    InvalidRequestError,
    MenuItem,
    MsgMenu,
    ResponseQuotaError,
    ResponseWindowError,
    Text,
    UnauthorizedError,
    UnreachableError,
    ValidationError,
)
from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    Delivery,
    DeliveryFailure,
    DuplicateEntry,
    HTTPAnswer,
    ImageReply,
    Incoming,
    MemoryDuplicateStore,
    Reply,
    Success,
    SystemClock,
    TextReply,
    TransferCustomerService,
)
from wechat_kf.callback._xml import parse_fields
from wechat_kf.testing import FakeWeChat

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

pytestmark = pytest.mark.anyio

SUCCESS = HTTPAnswer(status=200, body=b"success")


class Slow:
    """A handler that thinks ``seconds`` on the bot's clock, then answers (or raises)."""

    def __init__(self, answer: object, seconds: float = 8.0) -> None:
        self.answer = answer
        self.seconds = seconds
        self.calls: list[Incoming] = []
        self.bot: Bot | None = None

    async def __call__(self, incoming: Incoming) -> object:
        self.calls.append(incoming)
        assert self.bot is not None, "set slow.bot = bot"
        await self.bot.clock.sleep(self.seconds)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


async def answered_at_deadline(bot: Bot, request: tuple[dict[str, str], bytes]) -> HTTPAnswer:
    """Post ``request``, move the clock to the deadline, return the answer (checking when)."""
    answers: list[HTTPAnswer] = []
    arrived = bot.clock.now()

    async def post() -> None:
        answers.append(await bot.post(request))

    async with anyio.create_task_group() as group:
        group.start_soon(post)
        await bot.clock.sleeping(2)  # the deadline and the handler both wait
        assert answers == []
        assert bot.clock.sleepers[0] - arrived == 4.0  # from the request's arrival, < 5 s
        bot.clock.advance(4)
    assert bot.clock.now() - arrived == 4.0  # answered at the deadline, not later
    return answers[0]


async def step(bot: Bot, sleepers: int) -> float:
    """Once ``sleepers`` tasks wait on the clock, wake the first; return the new time."""
    await bot.clock.sleeping(sleepers)
    return bot.clock.advance_to_next()


async def finish(bot: Bot, sleepers: int = 2, at: float = 8.0) -> None:
    """Once ``sleepers`` wait (the handler, the typing), move to ``at`` (the handler's end)
    and let the answer be delivered."""
    await bot.clock.sleeping(sleepers)
    bot.clock.advance(at - bot.clock.now())
    await bot.endpoint.wait_idle()


# --------------------------------------------------------------------------- the deadline


async def test_a_fast_answer_goes_back_passively() -> None:
    calls: list[Incoming] = []

    async def fast(incoming: Incoming) -> Reply:
        calls.append(incoming)
        return TextReply(content="马上就好")

    async with running_bot(fast) as bot:
        request = bot.push()
        answer = await bot.post(request)
        assert (answer.status, answer.content_type) == (200, "application/xml; charset=utf-8")
        assert parse_fields(answer.body)["Content"] == "马上就好"
        assert await bot.post(request) == answer  # WeChat's retry: the same bytes
        await bot.endpoint.wait_idle()
        assert bot.calls() == []  # nothing through the API: passive replies are free
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("answer", "content"), [("hello", "hello"), (["only one"], "only one")], ids=["str", "list"]
)
async def test_one_text_or_a_list_of_one_is_a_passive_text(answer: object, content: str) -> None:
    async def fast(_incoming: Incoming) -> object:
        return answer

    async with running_bot(fast) as bot:
        assert parse_fields((await bot.post(bot.push())).body)["Content"] == content


async def test_a_slow_answer_is_success_at_the_deadline_then_sent_after_typing() -> None:
    slow = Slow(TextReply(content="想好了：答案是 42"))
    async with running_bot(slow) as bot:
        slow.bot = bot
        assert await answered_at_deadline(bot, bot.push()) == SUCCESS
        await bot.clock.sleeping(2)  # the handler (8 s) and "typing..." (renewed at 19 s)
        assert bot.calls() == [("typing", "Typing")]
        assert bot.api.user(OPENID).is_typing(bot.api.clock.now())
        bot.clock.advance(4)  # the handler's 8 s are over
        await bot.endpoint.wait_idle()
        assert bot.calls() == [("typing", "Typing"), ("send", "想好了：答案是 42")]
        assert bot.api.user(OPENID).typing_since is None  # the message ended it
    assert bot.failures == []
    assert len(slow.calls) == 1


async def test_wechats_retries_during_the_slow_answer_run_the_handler_once() -> None:
    slow = Slow("the answer")
    async with running_bot(slow) as bot:
        slow.bot = bot
        request = bot.push()
        answers: list[HTTPAnswer] = []

        async def one_try() -> None:
            answers.append(await bot.post(request))

        async with anyio.create_task_group() as group:
            group.start_soon(one_try)  # the first try
            await bot.clock.sleeping(2)
            group.start_soon(one_try)  # a try while the first is still before its deadline
            await anyio.sleep(0.05)  # (it waits for the first one, in real time)
            bot.clock.advance(4)
        assert answers == [SUCCESS, SUCCESS]
        for _ in range(3):  # WeChat's 3 retries while the handler thinks
            bot.clock.advance(1)
            assert await bot.post(request) == SUCCESS
        bot.clock.advance(1)  # 8 s
        await bot.endpoint.wait_idle()
        assert bot.texts() == ["the answer"]
        assert await bot.post(request) == SUCCESS  # and after the delivery
    assert len(slow.calls) == 1


async def test_typing_is_renewed_while_wechat_allows_it() -> None:
    # shown at 4 s, renewed at 19 s (15 s later); at 34 s the user's message is more than 30 s
    # old and WeChat would refuse it (45080): the typing stops, the answer comes at 40 s
    slow = Slow("slow but sure", seconds=40)
    async with running_bot(slow) as bot:
        slow.bot = bot
        start = bot.api.clock.now()
        assert await answered_at_deadline(bot, bot.push()) == SUCCESS
        assert await step(bot, 2) == 19  # the typing ran out: renewed
        assert await step(bot, 2) == 34  # ran out again: 34 s after the message, no more
        assert await step(bot, 1) == 40  # the handler answers
        await bot.endpoint.wait_idle()
        typing = bot.api.requests_to(TYPING)
        assert [round(r.time - start) for r in typing] == [4, 19]
        assert [round(r.time - start) for r in bot.api.requests_to(SEND)] == [40]
    assert bot.failures == []


async def test_typing_can_be_turned_off() -> None:
    slow = Slow("quietly")
    async with running_bot(slow, show_typing=False) as bot:
        slow.bot = bot
        assert await answered_at_deadline(bot, bot.push()) == SUCCESS
        await finish(bot, sleepers=1)
        assert bot.calls() == [("send", "quietly")]


async def test_an_answer_without_a_message_cancels_the_typing() -> None:
    slow = Slow(None)
    async with running_bot(slow) as bot:
        slow.bot = bot
        await answered_at_deadline(bot, bot.push())
        await finish(bot)
        assert bot.calls() == [("typing", "Typing"), ("typing", "CancelTyping")]
    assert bot.failures == []


# --------------------------------------------------------------------------- several messages


LINK = (
    '<a href="https://example.com/help" data-miniprogram-appid="wx1234567890abcdef" '
    'data-miniprogram-path="pages/help?q=1">帮助中心</a>'
)


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Your order ships tomorrow!",
    "Is there anything else we can do for you today?",
    "Thank you for waiting; we are glad to help 🙂.",
    "Everything else is unchanged.",
    "Please keep this message for your records.",
]


def long_answer() -> str:
    """10,000 characters in paragraphs of sentences, with mini-program links and emoji."""
    paragraphs: list[str] = []
    n = 0
    while len("\n\n".join(paragraphs)) < 10_000:
        paragraph = []
        for _ in range(3 + len(paragraphs) % 4):
            linked = n % 25 == 12
            paragraph.append(f"See {LINK} for details." if linked else SENTENCES[n % 6])
            n += 1
        paragraphs.append(" ".join(paragraph))
    text = "\n\n".join(paragraphs)
    while len(text) > 10_000 or not text.endswith("."):
        text = text[: text.rindex(" ")]
    return text


def squeezed(text: str) -> str:
    return "".join(text.split())


async def test_a_10000_character_answer_arrives_in_ordered_parts_links_intact() -> None:
    text = long_answer()
    assert len(text) > 9_950
    assert len(text.encode()) > 10_100

    async with running_bot(Slow(text)) as bot:
        bot.endpoint.on_message.bot = bot  # type: ignore[attr-defined]
        assert await answered_at_deadline(bot, bot.push()) == SUCCESS
        await finish(bot)
        parts = bot.texts()
    assert bot.failures == []
    assert len(parts) == 5  # WeChat allows 5 messages per user message: it all fits
    assert all(len(part.encode()) <= 2048 for part in parts)
    assert squeezed("".join(parts)) == squeezed(text)  # in order, nothing lost or doubled
    assert sum(part.count(LINK) for part in parts) == text.count(LINK)  # links never cut
    assert all(part.count("<a ") == part.count("</a>") for part in parts)


async def test_a_long_passive_text_goes_through_the_api_in_parts_at_the_paragraph() -> None:
    text = "第一段。" * 300 + "\n\n" + "第二段！" * 300  # 7,202 bytes: 4 parts

    async def fast(_incoming: Incoming) -> Reply:
        return TextReply(content=text)

    async with running_bot(fast) as bot:
        assert await bot.post(bot.push()) == SUCCESS  # several messages: all through the API
        await bot.endpoint.wait_idle()
        parts = bot.texts()
    assert len(parts) == 4
    assert "".join(parts) == text.replace("\n\n", "")
    assert [part[-4:] for part in parts[:3]] == ["第一段。", "第一段。", "第二段！"]
    assert parts[2].startswith("第二段！")  # the cut at the blank line, not mid-paragraph


def paragraphs(count: int, size: int = 60) -> list[str]:
    return [f"第{n}段：" + "好" * size for n in range(1, count + 1)]


async def test_a_streamed_6_part_answer_is_merged_into_the_fifth_message() -> None:
    parts = paragraphs(6)

    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        for part in parts:
            yield part

    async with running_bot(stream) as bot:
        assert await bot.post(bot.push()) == SUCCESS
        await bot.endpoint.wait_idle()
        assert bot.texts() == [*parts[:4], parts[4] + "\n\n" + parts[5]]
    assert bot.failures == []


async def test_a_streamed_answer_that_cannot_fit_is_refused_beyond_the_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    parts = paragraphs(7, size=600)  # 1,800 bytes each: two never fit in one message

    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        for part in parts:
            yield part

    async with running_bot(stream) as bot:
        with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
            await bot.post(bot.push())
            await bot.endpoint.wait_idle()
        assert bot.texts() == parts[:5]
        assert len(bot.api.requests_to(SEND)) == 5  # never a 6th to fail with 45047
    [failure] = bot.failures
    assert (failure.reason, failure.openid, failure.sent) == ("over_budget", OPENID, 5)
    assert failure.unsent == (Text(content=parts[5]), Text(content=parts[6]))
    assert f"answer to {OPENID}: the answer needs more messages than WeChat allows" in caplog.text


async def test_overlapping_answers_share_the_users_window_through_the_ledger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two slow answers to one user: the push budgets say 5 + 5, WeChat allows 5 in all.

    The endpoint feeds the client's window ledger (``wx.windows``, by default with
    ``wechat=``) and each late message reserves its place in it, so the answers share it.
    """
    thinking = {1001: 8.0, 1002: 9.0}

    async def slow(incoming: Incoming) -> list[str]:
        msg_id = int(incoming.raw["MsgId"])
        await bot.clock.sleep(thinking[msg_id])
        return [f"{msg_id}-{n}" for n in range(3)]

    async with running_bot(slow) as bot:
        bot.api.user_says(OPENID, "还在吗？")  # the second message: 5 messages from now on
        with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
            async with anyio.create_task_group() as group:
                for msg_id, text in ((1001, "你好"), (1002, "还在吗？")):
                    push = text_push(text, msg_id=msg_id, CreateTime=int(time.time()))
                    group.start_soon(bot.post, bot.pushes.push(push))
                while bot.clock.now() < 10 or bot.clock.sleepers:
                    await bot.clock.sleeping(1)
                    bot.clock.advance_to_next()
            await bot.endpoint.wait_idle()
        status = await bot.wx.windows.get(OPENID)
        assert status.messages_left == 0
        # The ledger knew the window was spent: no 6th message was sent to fail with 45047.
        texts = bot.texts()
        assert len(texts) == len(bot.api.requests_to(SEND)) == 5
        for msg_id in (1001, 1002):  # each answer in its own order (the two interleave)
            own = [text for text in texts if text.startswith(f"{msg_id}-")]
            assert own == [f"{msg_id}-{n}" for n in range(len(own))]
    [failure] = bot.failures
    assert failure.reason == "over_budget"
    assert isinstance(failure.error, UnreachableError)
    assert failure.error.reason == "no_messages_left"
    msg_id = int(failure.incoming.raw["MsgId"])
    assert failure.unsent == (Text(content=f"{msg_id}-2"),)
    assert failure.maybe_sent is None  # refused by the ledger: no request went out
    assert "45047" not in caplog.text


async def test_a_streamed_answer_shows_typing_between_slow_parts() -> None:
    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        yield "first thought"
        await bot.clock.sleep(10)
        yield "second thought"

    async with running_bot(stream) as bot:
        assert await bot.post(bot.push()) == SUCCESS  # a stream: success at its first part
        assert await step(bot, 2) == 1  # a second after the first part: typing, then
        assert await step(bot, 2) == 10  # the second part
        await bot.endpoint.wait_idle()
        assert bot.calls() == [
            ("send", "first thought"),
            ("typing", "Typing"),  # a second after the first part, the next one still coming
            ("send", "second thought"),
        ]


async def test_a_list_of_replies_and_messages_goes_out_in_order() -> None:
    menu = MsgMenu(items=[MenuItem(id="1", content="满意")], head_content="满意吗？")

    async def fast(_incoming: Incoming) -> list[object]:
        return [TextReply(content="您好"), ImageReply(media_id="MEDIA"), menu, None]

    async with running_bot(fast) as bot:
        bot.api.add_media("image", media_id="MEDIA")  # the fake knows only media it holds
        assert await bot.post(bot.push()) == SUCCESS
        await bot.endpoint.wait_idle()
        assert [body["msgtype"] for body in bot.api.sent_to(OPENID)] == ["text", "image", "msgmenu"]
        assert bot.api.sent_to(OPENID)[1]["image"] == {"media_id": "MEDIA"}
        assert bot.api.requests_to(TYPING) == []  # nothing to wait for: no typing


async def test_a_late_image_reply_is_sent_as_an_image_message() -> None:
    slow = Slow(ImageReply(media_id="MEDIA_ID"))
    async with running_bot(slow) as bot:
        slow.bot = bot
        bot.api.add_media("image", media_id="MEDIA_ID")
        await answered_at_deadline(bot, bot.push())
        await finish(bot)
        assert bot.api.sent_to(OPENID)[-1]["image"] == {"media_id": "MEDIA_ID"}
        assert Image(media_id="MEDIA_ID") == ImageReply(media_id="MEDIA_ID").as_message()


async def test_an_event_allows_three_messages() -> None:
    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        for part in paragraphs(4, size=600):
            yield part

    async with running_bot(stream, window=False) as bot:
        bot.api.user_follows(OPENID)  # a follow: 3 messages within a minute
        await bot.post(bot.pushes.push(event_push("subscribe")))
        await bot.endpoint.wait_idle()
        assert len(bot.texts()) == 3
    [failure] = bot.failures
    assert (failure.reason, len(failure.unsent)) == ("over_budget", 1)


async def test_ai_generated_marks_every_message_and_goes_through_the_api() -> None:
    async def fast(_incoming: Incoming) -> Reply:
        return TextReply(content="由 AI 生成")

    async with running_bot(fast, ai_generated=True) as bot:
        assert await bot.post(bot.push()) == SUCCESS  # passive replies carry no AI mark
        await bot.endpoint.wait_idle()
        [body] = bot.api.sent_to(OPENID)
        assert body["aimsgcontext"] == {"is_ai_msg": 1}
        assert body["text"] == {"content": "由 AI 生成"}


async def test_a_fast_transfer_is_passive_even_when_ai_generated() -> None:
    async def fast(_incoming: Incoming) -> Reply:
        return TransferCustomerService()

    async with running_bot(fast, ai_generated=True) as bot:
        answer = await bot.post(bot.push())
        assert parse_fields(answer.body)["MsgType"] == "transfer_customer_service"


# --------------------------------------------------------------------------- failures


async def test_a_raising_handler_reaches_the_hook_and_cancels_typing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = Slow(RuntimeError("the model is down"))
    async with running_bot(slow) as bot:
        slow.bot = bot
        with caplog.at_level(logging.ERROR, logger="wechat_kf.callback"):
            assert await answered_at_deadline(bot, bot.push()) == SUCCESS
            await finish(bot)
        assert bot.calls() == [("typing", "Typing"), ("typing", "CancelTyping")]
        request = bot.push()
        assert await bot.post(request) == SUCCESS  # a retry never runs the work again
    [failure] = bot.failures
    assert (failure.reason, failure.openid, failure.sent) == ("handler", OPENID, 0)
    assert isinstance(failure.error, RuntimeError)
    assert f"answer to {OPENID}: on_message failed: RuntimeError: the model is down" in caplog.text
    assert "Traceback" in caplog.text
    assert len(slow.calls) == 1


async def test_a_handler_raising_before_the_deadline_answers_success_and_reports() -> None:
    async def broken(_incoming: Incoming) -> Reply:
        raise KeyError("user")

    async with running_bot(broken) as bot:
        assert await bot.post(bot.push()) == SUCCESS
        await bot.endpoint.wait_idle()
    [failure] = bot.failures
    assert failure.reason == "handler"
    assert isinstance(failure.error, KeyError)


async def test_a_45015_delivery_reaches_the_hook(caplog: pytest.LogCaptureFixture) -> None:
    slow = Slow(["one", "two"])
    async with running_bot(slow, window=False) as bot:  # the fake saw no message: 45015
        slow.bot = bot
        with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
            await answered_at_deadline(bot, bot.push())
            await finish(bot, sleepers=1)  # (no window: the typing was refused too)
        assert bot.api.sent_to(OPENID) == []
    [failure] = bot.failures
    assert (failure.reason, failure.openid) == ("refused", OPENID)
    assert isinstance(failure.error, ResponseWindowError)
    assert failure.error.errcode == 45015
    assert failure.unsent == (Text(content="one"), Text(content="two"))  # the rest not tried
    assert failure.maybe_sent is None
    assert f"answer to {OPENID}: a message was refused: ResponseWindowError" in caplog.text


async def test_a_lost_delivery_is_unknown_and_never_sent_again() -> None:
    async def fast(_incoming: Incoming) -> list[str]:
        return ["one", "two", "three"]

    async with running_bot(fast) as bot:
        bot.api.inject(SEND, reset=True)  # the first send reaches WeChat, its answer is lost
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        assert bot.texts() == ["one"]  # delivered, as far as WeChat knows, once
        assert len(bot.api.requests_to(SEND)) == 1
    [failure] = bot.failures
    assert failure.reason == "unknown"
    assert isinstance(failure.error, ConnectionLostError)
    assert failure.maybe_sent == Text(content="one")
    assert failure.unsent == (Text(content="two"), Text(content="three"))


async def test_a_late_transfer_is_lost_and_reported() -> None:
    slow = Slow(TransferCustomerService())
    async with running_bot(slow) as bot:
        slow.bot = bot
        await answered_at_deadline(bot, bot.push())
        await finish(bot)
        assert bot.api.requests_to(SEND) == []
    [failure] = bot.failures
    assert failure.reason == "too_late"
    assert failure.unsent == (TransferCustomerService(),)


async def test_a_link_too_long_for_a_message_is_refused_before_sending() -> None:
    link = f'<a href="https://example.com/{"x" * 2100}">open</a>'

    async def fast(_incoming: Incoming) -> list[str]:
        return ["before", f"see {link}"]

    async with running_bot(fast) as bot:
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        assert bot.texts() == ["before"]
    [failure] = bot.failures
    assert failure.reason == "refused"
    assert isinstance(failure.error, ValidationError)
    assert (failure.sent, failure.unsent) == (1, (Text(content=f"see {link}"),))


async def test_an_unsupported_answer_is_the_handlers_bug() -> None:
    async def wrong(_incoming: Incoming) -> object:
        return {"text": "a dict"}

    async with running_bot(wrong) as bot:
        assert await bot.post(bot.push()) == SUCCESS
        await bot.endpoint.wait_idle()
    [failure] = bot.failures
    assert failure.reason == "handler"
    assert "answered a dict" in str(failure.error)


async def test_a_failing_hook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def hook(_failure: object) -> None:
        raise ValueError("hook bug")

    async def broken(_incoming: Incoming) -> Reply:
        raise RuntimeError("boom")

    async with running_bot(broken, on_delivery_failed=hook) as bot:
        with caplog.at_level(logging.ERROR, logger="wechat_kf.callback"):
            assert await bot.post(bot.push()) == SUCCESS
            await bot.endpoint.wait_idle()
        assert await bot.post(bot.push(msg_id=2)) == SUCCESS  # still serving
    assert "on_delivery_failed raised" in caplog.text


async def test_an_async_hook_is_awaited() -> None:
    told: list[str] = []

    async def hook(failure: object) -> None:
        await anyio.lowlevel.checkpoint()
        told.append(str(failure))

    async def broken(_incoming: Incoming) -> Reply:
        raise RuntimeError("boom")

    async with running_bot(broken, on_delivery_failed=hook) as bot:
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
    assert told == [
        f"answer to {OPENID}: on_message failed: RuntimeError: boom (0 sent, 0 not sent)"
    ]


# --------------------------------------------------------------------------- lifetime


async def test_shutdown_with_a_handler_in_flight_reports_it() -> None:
    slow = Slow("never", seconds=60)
    async with running_bot(slow, shutdown_grace=5.0) as bot:
        slow.bot = bot
        assert await answered_at_deadline(bot, bot.push()) == SUCCESS
        await bot.clock.sleeping(2)  # the handler and the typing
        bot.stop.set()  # the application shuts down
        await bot.clock.sleeping(3)  # ... and gives the answer in flight its grace period
        assert bot.failures == []
        assert bot.clock.sleepers[0] == bot.clock.now() + 5
        assert (await bot.post(bot.push(msg_id=2))).status == 503  # closing: WeChat retries
        bot.clock.advance(5)  # the grace period ends with the handler still thinking
        await bot.stopped.wait()
        assert bot.endpoint.delivery is not None
        assert bot.endpoint.delivery.in_flight == 0
        [failure] = bot.failures
        assert (failure.reason, failure.openid, failure.sent) == ("shutdown", OPENID, 0)
        assert bot.calls() == [("typing", "Typing"), ("typing", "CancelTyping")]
    assert len(slow.calls) == 1


async def test_an_answer_finishing_within_the_grace_period_is_delivered() -> None:
    slow = Slow("just in time", seconds=6)
    async with running_bot(slow, shutdown_grace=5.0) as bot:
        slow.bot = bot
        await answered_at_deadline(bot, bot.push())
        await bot.clock.sleeping(2)
        bot.stop.set()
        await bot.clock.sleeping(3)
        bot.clock.advance(2)  # the handler finishes 2 s into the grace period
        await bot.stopped.wait()
        assert bot.texts() == ["just in time"]
    assert bot.failures == []


async def test_a_push_before_the_deadline_at_shutdown_is_released_for_a_retry() -> None:
    slow = Slow("never", seconds=60)
    async with running_bot(slow, shutdown_grace=0) as bot:
        slow.bot = bot
        request = bot.push()
        answers: list[HTTPAnswer] = []

        async def post() -> None:
            answers.append(await bot.post(request))

        async with anyio.create_task_group() as group:
            group.start_soon(post)
            await bot.clock.sleeping(2)
            bot.stop.set()
        await bot.stopped.wait()
        assert answers[0].status == 503  # not answered: WeChat's retry goes elsewhere
        entry = await bot.endpoint.deduplicator.store.claim(
            bot.endpoint.deduplicator.key(slow.calls[0]), 30
        )
        assert entry is None  # released: a retry is processed
    [failure] = bot.failures
    assert failure.reason == "shutdown"


async def test_without_running_a_push_is_a_clear_error() -> None:
    api = FakeWeChat()
    async with api.client() as wx:

        async def on_message(_incoming: Incoming) -> None:
            return None

        endpoint = CallbackEndpoint(
            CallbackHandler(token=TOKEN, appid=APPID), on_message, wechat=wx
        )
        bot = Bot(api=api, wx=wx, clock=None, endpoint=endpoint, failures=[])  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match=r"async with endpoint\.running\(\)"):
            await bot.post(bot.push())
        async with endpoint.running():
            assert await bot.post(bot.push(msg_id=7)) == SUCCESS


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("reply_deadline", 5.0),
        ("reply_deadline", 0),
        ("reply_deadline", True),
        ("shutdown_grace", -1),
        ("shutdown_grace", float("inf")),
        ("max_text_bytes", 2049),
        ("max_text_bytes", 8),
        ("show_typing", "yes"),
        ("ai_generated", 1),
    ],
)
async def test_options_are_validated(option: str, value: object) -> None:
    async with FakeWeChat().client() as wx:
        with pytest.raises(ValidationError, match=option):
            CallbackEndpoint(
                CallbackHandler(token=TOKEN, appid=APPID),
                lambda _incoming: None,  # type: ignore[arg-type,return-value]
                wechat=wx,
                **{option: value},  # type: ignore[arg-type]
            )


async def test_without_wechat_only_passive_answers_are_possible() -> None:
    async def several(_incoming: Incoming) -> list[str]:
        return ["one", "two"]

    endpoint = CallbackEndpoint(CallbackHandler(token=TOKEN, appid=APPID), several)
    bot = Bot(api=None, wx=None, clock=None, endpoint=endpoint, failures=[])  # type: ignore[arg-type]
    async with endpoint.running():  # nothing to run: fine in a shared lifespan
        with pytest.raises(ValidationError, match="give the endpoint wechat="):
            await bot.post(bot.push())


async def test_a_stream_failing_midway_delivers_what_came_before_and_reports() -> None:
    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        yield "part one"
        yield "part two"
        raise RuntimeError("the model stopped")

    async with running_bot(stream) as bot:
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        assert bot.texts() == ["part one", "part two"]
    [failure] = bot.failures
    assert (failure.reason, failure.sent, str(failure.error)) == ("handler", 2, "the model stopped")


async def test_typing_refused_as_already_on_is_tried_again_a_second_later() -> None:
    slow = Slow("after a hiccup")
    async with running_bot(slow) as bot:
        slow.bot = bot
        bot.api.inject(TYPING, errcode=45081)  # "already typing": WeChat's view of the state
        assert await answered_at_deadline(bot, bot.push()) == SUCCESS
        assert await step(bot, 2) == 5.0  # a second later: shown
        await finish(bot)
        typing = [
            (round(r.time - typing_start(bot)), r.json()["command"])
            for r in bot.api.requests_to(TYPING)
        ]
        assert typing == [(0, "Typing"), (1, "Typing")]
        assert bot.texts() == ["after a hiccup"]
    assert bot.failures == []


def typing_start(bot: Bot) -> float:
    return bot.api.requests_to(TYPING)[0].time


async def test_a_reply_that_cannot_be_written_is_reported_and_answered_success() -> None:
    class Broken(Reply):  # a custom reply whose XML cannot be built (a bool has no XML form)
        MSG_TYPE = "text"

        def xml_fields(self) -> dict[str, object]:  # type: ignore[override]
            return {"MsgType": "text", "Content": True}

    async def fast(_incoming: Incoming) -> Reply:
        return Broken()

    async with running_bot(fast) as bot:
        request = bot.push()
        assert await bot.post(request) == SUCCESS
        await bot.endpoint.wait_idle()
        assert await bot.post(request) == SUCCESS  # stored: the retry does not run it again
    [failure] = bot.failures
    assert failure.reason == "refused"
    assert isinstance(failure.error, TypeError)


@pytest.mark.parametrize(
    ("errcode", "error"),
    [(45047, ResponseQuotaError), (48001, UnauthorizedError), (45002, InvalidRequestError)],
)
async def test_every_refusal_reaches_the_hook_typed(errcode: int, error: type[Exception]) -> None:
    async def fast(_incoming: Incoming) -> list[str]:
        return ["one", "two"]

    async with running_bot(fast) as bot:
        bot.api.inject(SEND, errcode=errcode)
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        assert len(bot.api.requests_to(SEND)) == 1  # the rest of the answer is not tried
    [failure] = bot.failures
    assert failure.reason == "refused"
    assert isinstance(failure.error, error)
    assert failure.unsent == (Text(content="one"), Text(content="two"))


# --------------------------------------------------------------------------- the rules, exactly


@pytest.mark.parametrize(
    ("option", "value", "limit"),
    [
        ("reply_deadline", 5.0, "must be seconds above 0 and below 5 (WeChat's wait)"),
        ("reply_deadline", 0, "must be seconds above 0 and below 5 (WeChat's wait)"),
        ("shutdown_grace", -1, "must be seconds (0 or more)"),
        ("max_text_bytes", 64.0, "must be an int (bytes)"),
        ("max_text_bytes", 15, "must be 16 to 2048 (WeChat refuses longer text: 45002)"),
        ("max_text_bytes", 2049, "must be 16 to 2048 (WeChat refuses longer text: 45002)"),
        ("show_typing", 1, "must be a bool"),
        ("ai_generated", "no", "must be a bool"),
    ],
)
async def test_each_option_error_names_the_option_its_rule_and_the_value(
    option: str, value: object, limit: str
) -> None:
    async with FakeWeChat().client() as wx:
        with pytest.raises(ValidationError) as info:
            Delivery(wx, **{option: value})  # type: ignore[arg-type]
    assert (info.value.field, info.value.limit, info.value.value) == (option, limit, value)


async def test_the_smallest_options_are_accepted_and_the_defaults_are_documented() -> None:
    async with FakeWeChat().client() as wx:
        smallest = Delivery(wx, reply_deadline=0.5, shutdown_grace=0, max_text_bytes=16)
        assert (smallest.reply_deadline, smallest.max_text_bytes) == (0.5, 16)
        assert Delivery(wx, max_text_bytes=2048).max_text_bytes == 2048
        default = Delivery(wx)
        assert (default.show_typing, default.ai_generated) == (True, False)
        assert (default.reply_deadline, default.shutdown_grace) == (4.0, 10.0)
        assert isinstance(default.clock, SystemClock)
        assert default.windows is None
        assert repr(default) == "Delivery(reply_deadline=4, in_flight=0)"
        assert not default.accepting


async def test_an_answer_in_flight_is_counted() -> None:
    slow = Slow("done")
    async with running_bot(slow) as bot:
        slow.bot = bot
        delivery = bot.endpoint.delivery
        assert delivery is not None
        await answered_at_deadline(bot, bot.push())
        assert (delivery.in_flight, repr(delivery)) == (
            1,
            "Delivery(reply_deadline=4, in_flight=1)",
        )
        await finish(bot)
        assert delivery.in_flight == 0


async def test_without_running_the_error_says_how_to_run() -> None:
    async with FakeWeChat().client() as wx:
        with pytest.raises(RuntimeError) as info:
            Delivery(wx).check_running()
    assert str(info.value) == (
        "CallbackEndpoint(wechat=...) answers from a task group of its own: open it with "
        "'async with endpoint.running():' in your application's lifespan (see the "
        "wechat_kf.callback.starlette and .aiohttp documentation)"
    )


@pytest.mark.parametrize(
    ("text", "passive"),
    [("a" * 16, True), ("字" * 5 + "a", True), ("a" * 17, False)],
    ids=["16-bytes", "16-bytes-utf8", "17-bytes"],
)
async def test_a_text_of_exactly_max_text_bytes_is_passive_and_one_byte_more_is_not(
    text: str, passive: bool
) -> None:
    async def fast(_incoming: Incoming) -> str:
        return text

    async with running_bot(fast, max_text_bytes=16) as bot:
        answer = await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        if passive:
            assert parse_fields(answer.body)["Content"] == text
            assert bot.texts() == []
        else:
            assert answer == SUCCESS
            assert bot.texts() == ["a" * 16, "a"]
    assert bot.failures == []


async def test_an_empty_answer_is_success_and_sends_nothing() -> None:
    async def fast(_incoming: Incoming) -> str:
        return ""

    async with running_bot(fast) as bot:
        assert await bot.post(bot.push()) == SUCCESS
        await bot.endpoint.wait_idle()
        assert bot.calls() == []
    assert bot.failures == []


@pytest.mark.parametrize(
    ("fifth", "sixth", "merged"),
    [("a" * 31, "b" * 31, True), ("a" * 32, "b" * 31, False)],
    ids=["64-bytes", "65-bytes"],
)
async def test_the_last_message_takes_the_rest_when_it_fits_exactly(
    fifth: str, sixth: str, merged: bool
) -> None:
    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        for part in ["1", "2", "3", "4", fifth, sixth]:
            yield part

    async with running_bot(stream, max_text_bytes=64) as bot:
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        if merged:
            assert bot.texts() == ["1", "2", "3", "4", fifth + "\n\n" + sixth]
            assert bot.failures == []
        else:
            assert bot.texts() == ["1", "2", "3", "4", fifth]
            [failure] = bot.failures
            assert (failure.reason, failure.unsent) == ("over_budget", (Text(content=sixth),))
            assert failure.maybe_sent is None


async def test_the_last_message_is_not_merged_when_it_is_not_a_text() -> None:
    async def fast(_incoming: Incoming) -> list[object]:
        return ["1", "2", "3", "4", Image(media_id="MEDIA_ID"), "6"]

    async with running_bot(fast) as bot:
        bot.api.add_media("image", media_id="MEDIA_ID")
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        assert bot.api.sent_to(OPENID)[-1]["image"] == {"media_id": "MEDIA_ID"}
    [failure] = bot.failures
    assert (failure.reason, failure.sent, failure.unsent) == (
        "over_budget",
        5,
        (Text(content="6"),),
    )


async def test_a_long_text_after_a_message_is_fitted_into_the_messages_left() -> None:
    long = "\n\n".join(["a" * 40] * 5)  # 5 parts at its paragraphs; 4 fit when fuller

    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        yield "hi"
        await bot.clock.sleep(2)
        yield long

    async with running_bot(stream, max_text_bytes=64) as bot:
        await bot.post(bot.push())
        await finish(bot, at=2)  # the stream's 2 s and the typing after "hi"
        texts = bot.texts()
    assert bot.failures == []
    assert len(texts) == 5
    assert squeezed("".join(texts[1:])) == squeezed(long)


async def test_a_long_text_for_the_last_message_is_cut_as_full_as_can_be() -> None:
    long = "b" * 40 + "\n\n" + "c" * 40  # 2 parts at its paragraph; it cannot fit in 1

    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        for part in ["1", "2", "3", "4", "5", long]:
            yield part

    async with running_bot(stream, max_text_bytes=64) as bot:
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        assert bot.texts() == ["1", "2", "3", "4", "5"]
    [failure] = bot.failures
    assert failure.unsent == (Text(content="b" * 40 + "\n\n" + "c" * 22), Text(content="c" * 18))


# --------------------------------------------------------------------------- what is reported


class NoMessage(Reply):
    """A custom reply with no customer-service form."""

    MSG_TYPE = "text"

    def xml_fields(self) -> dict[str, object]:  # type: ignore[override]
        return {"MsgType": "text", "Content": "custom"}


class Exploding(NoMessage):
    """A custom reply whose message form fails: a bug in the application's own reply."""

    def as_message(self) -> None:
        raise RuntimeError("no message form today")


async def test_a_late_reply_without_a_message_form_is_the_handlers_bug() -> None:
    async def fast(_incoming: Incoming) -> list[object]:
        return ["before", NoMessage(), "after"]

    async with running_bot(fast) as bot:
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        assert bot.texts() == ["before"]
    [failure] = bot.failures
    assert (failure.reason, failure.sent) == ("handler", 1)
    assert isinstance(failure.error, TypeError)
    assert str(failure.error) == "NoMessage has no message form"
    assert failure.unsent == (Text(content="after"),)


async def test_an_unsupported_answer_says_what_to_answer() -> None:
    async def wrong(_incoming: Incoming) -> object:
        return 42

    async with running_bot(wrong) as bot:
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
    [failure] = bot.failures
    assert (failure.reason, type(failure.error)) == ("handler", TypeError)
    assert str(failure.error) == (
        "on_message answered a int: answer a wechat_kf.callback reply, a wechat_kf message, "
        "a str or None, or a list or async iterator of those"
    )


async def test_a_bug_while_delivering_is_logged_reported_and_the_app_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fast(_incoming: Incoming) -> list[object]:
        return ["before", Exploding()]

    async with running_bot(fast) as bot:
        request = bot.push()
        with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
            assert await bot.post(request) == SUCCESS
            await bot.endpoint.wait_idle()
        assert await bot.post(request) == SUCCESS  # stored: a retry does not run it again
        assert bot.texts() == ["before"]
    [failure] = bot.failures
    assert (failure.reason, failure.sent, failure.unsent) == ("refused", 1, ())
    assert type(failure.error) is RuntimeError  # the bug itself, not an exception group
    assert str(failure.error) == "no message form today"
    [record, report] = caplog.records
    assert record.getMessage() == f"answer to {OPENID}: delivery failed unexpectedly"
    assert record.exc_info is not None
    assert report.getMessage() == str(failure)


async def test_the_values_not_taken_yet_are_reported_as_messages() -> None:
    image = ImageReply(media_id="M1")

    async def fast(_incoming: Incoming) -> list[object]:
        return [
            "first",
            "",
            None,
            Success(),
            image,
            TransferCustomerService(),
            Image(media_id="M2"),
            "last",
        ]

    async with running_bot(fast) as bot:
        bot.api.inject(SEND, errcode=45047)
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
    [failure] = bot.failures
    assert failure.reason == "refused"
    assert failure.maybe_sent is None
    assert failure.unsent == (
        Text(content="first"),
        Image(media_id="M1"),
        TransferCustomerService(),
        Image(media_id="M2"),
        Text(content="last"),
    )


async def test_a_stream_that_failed_after_its_values_reports_them_and_the_refusal() -> None:
    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        yield "one"
        yield "two"
        raise RuntimeError("the model stopped")

    async with running_bot(stream) as bot:
        bot.api.inject(SEND, errcode=45047)
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
    [failure] = bot.failures
    assert failure.reason == "refused"
    assert isinstance(failure.error, ResponseQuotaError)
    assert failure.unsent == (Text(content="one"), Text(content="two"))


async def test_a_stream_cut_off_runs_its_cleanup_before_the_answer_ends() -> None:
    cleaned: list[bool] = []

    async def endless() -> AsyncIterator[str]:
        try:
            while True:
                yield "more"
        finally:
            cleaned.append(True)

    stream = endless()  # held here too: only the delivery's own aclose() can end it now
    async with running_bot(lambda _incoming: stream) as bot:
        bot.api.inject(SEND, errcode=45047)
        await bot.post(bot.push())
        await bot.endpoint.wait_idle()
        assert cleaned == [True]
    await stream.aclose()
    [failure] = bot.failures
    assert failure.reason == "refused"


async def test_each_failure_is_logged_as_the_report_says(caplog: pytest.LogCaptureFixture) -> None:
    async def fast(_incoming: Incoming) -> list[str]:
        return ["one", "two"]

    async with running_bot(fast) as bot:
        bot.api.inject(SEND, errcode=45047)
        with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
            await bot.post(bot.push())
            await bot.endpoint.wait_idle()
    [failure] = bot.failures
    [record] = caplog.records
    assert (record.levelno, record.getMessage()) == (logging.WARNING, str(failure))
    assert str(failure).endswith("(0 sent, 2 not sent)")


async def test_a_failing_hook_is_logged_with_the_openid(caplog: pytest.LogCaptureFixture) -> None:
    def hook(_failure: object) -> None:
        raise ValueError("hook bug")

    async def broken(_incoming: Incoming) -> Reply:
        raise RuntimeError("boom")

    async with running_bot(broken, on_delivery_failed=hook) as bot:
        with caplog.at_level(logging.ERROR, logger="wechat_kf.callback"):
            await bot.post(bot.push())
            await bot.endpoint.wait_idle()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        f"answer to {OPENID}: on_message failed: RuntimeError: boom (0 sent, 0 not sent)",
        f"on_delivery_failed raised for the answer to {OPENID}",
    ]


async def test_a_reply_that_cannot_be_written_is_reported_unsent() -> None:
    class Broken(Reply):
        MSG_TYPE = "text"

        def xml_fields(self) -> dict[str, object]:  # type: ignore[override]
            return {"MsgType": "text", "Content": True}

    broken = Broken()

    async def fast(_incoming: Incoming) -> Reply:
        return broken

    async with running_bot(fast) as bot:
        assert await bot.post(bot.push()) == SUCCESS
        await bot.endpoint.wait_idle()
    [failure] = bot.failures
    assert (failure.reason, failure.sent, failure.unsent) == ("refused", 0, (broken,))
    assert failure.maybe_sent is None


# --------------------------------------------------------------------------- typing, exactly


async def test_typing_refused_otherwise_is_logged_and_not_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = Slow("anyway")
    async with running_bot(slow) as bot:
        slow.bot = bot
        bot.api.inject(TYPING, errcode=45080)
        with caplog.at_level(logging.INFO, logger="wechat_kf.callback"):
            assert await answered_at_deadline(bot, bot.push()) == SUCCESS
            await finish(bot, sleepers=1)
        assert bot.calls() == [("typing", "Typing"), ("send", "anyway")]
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("typing")]
    assert len(messages) == 1
    assert messages[0].startswith(f"typing for {OPENID}: Typing failed: TypingError: ")
    assert "45080" in messages[0]
    assert bot.failures == []


async def test_a_failed_cancel_typing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    slow = Slow(None)
    async with running_bot(slow) as bot:
        slow.bot = bot
        await answered_at_deadline(bot, bot.push())
        await bot.clock.sleeping(2)
        bot.api.inject(TYPING, errcode=45072)
        with caplog.at_level(logging.INFO, logger="wechat_kf.callback"):
            bot.clock.advance(4)
            await bot.endpoint.wait_idle()
        assert bot.calls() == [("typing", "Typing"), ("typing", "CancelTyping")]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert messages[0].startswith(f"typing for {OPENID}: CancelTyping failed: TypingError: ")


async def test_typing_stops_once_the_last_exchange_is_exactly_30_seconds_old() -> None:
    slow = Slow("late", seconds=100)
    async with running_bot(slow) as bot:
        slow.bot = bot
        bot.clock.advance(1000)  # a clock far from its origin: durations, not instants
        bot.api.user_says(OPENID, "你好")
        incoming = bot.endpoint.handler.parse(*bot.push())
        arrived = bot.clock.now() - 15  # the push came 15 s ago: past the deadline
        answers: list[HTTPAnswer] = []

        async def handle() -> None:
            answers.append(await bot.endpoint.handle(incoming, arrived=arrived))

        async with anyio.create_task_group() as group:
            group.start_soon(handle)
            await bot.clock.sleeping(2)  # at once: success, "typing..." (until 30 s)
        assert answers == [SUCCESS]
        assert await step(bot, 2) == arrived + 30  # typing ran out 30 s after the push: over
        assert await step(bot, 1) == arrived + 15 + 100
        await bot.endpoint.wait_idle()
        assert len(bot.api.requests_to(TYPING)) == 1  # shown once, never renewed
        assert bot.texts() == ["late"]
    assert bot.failures == []


# --------------------------------------------------------------------------- shutdown, exactly


async def test_shutdown_while_thinking_reports_nothing_maybe_sent() -> None:
    slow = Slow("never", seconds=60)
    async with running_bot(slow, shutdown_grace=0) as bot:
        slow.bot = bot
        await answered_at_deadline(bot, bot.push())
        await bot.clock.sleeping(2)
        bot.stop.set()
        await bot.stopped.wait()
    [failure] = bot.failures
    assert (failure.reason, failure.sent, failure.unsent, failure.maybe_sent) == (
        "shutdown",
        0,
        (),
        None,
    )


class GatedStore(MemoryDuplicateStore):
    """A duplicate store whose claims wait for ``claim_gate`` when set (a slow shared store)."""

    def __init__(self) -> None:
        super().__init__()
        self.claim_gate: anyio.Event | None = None
        self.waiting = anyio.Event()

    async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
        if self.claim_gate is not None:
            self.waiting.set()
            await self.claim_gate.wait()
        return await super().claim(key, ttl)


async def test_shutdown_with_a_send_in_flight_reports_it_maybe_sent_and_the_rest_unsent() -> None:
    told: list[DeliveryFailure] = []

    async def hook(failure: DeliveryFailure) -> None:
        await anyio.lowlevel.checkpoint()  # an async hook gets to finish while cut off
        told.append(failure)

    async def fast(_incoming: Incoming) -> list[str]:
        return ["one", "two"]

    async with running_bot(fast, shutdown_grace=0, on_delivery_failed=hook) as bot:
        bot.api.inject(SEND, delay=600)  # the first send hangs until the shutdown cuts it off
        assert await bot.post(bot.push()) == SUCCESS
        while not bot.api.requests_to(SEND):
            await anyio.lowlevel.checkpoint()
        bot.stop.set()
        await bot.stopped.wait()
    [failure] = told
    assert (failure.reason, failure.sent) == ("shutdown", 0)
    assert failure.maybe_sent == Text(content="one")  # it may have reached the user
    assert failure.unsent == (Text(content="two"),)
    assert str(failure).endswith("(0 sent, 1 not sent)")


async def test_a_push_claimed_as_shutdown_begins_is_released_and_answered_503() -> None:
    store = GatedStore()
    slow = Slow("never", seconds=60)
    async with running_bot(slow, shutdown_grace=5.0, deduplicator=store) as bot:
        slow.bot = bot
        assert await answered_at_deadline(bot, bot.push()) == SUCCESS  # one answer in flight
        await bot.clock.sleeping(2)
        store.claim_gate = anyio.Event()
        late = bot.push(msg_id=2)
        answers: list[HTTPAnswer] = []

        async def post() -> None:
            answers.append(await bot.post(late))

        async with anyio.create_task_group() as group:
            group.start_soon(post)  # accepted, then its claim waits...
            await store.waiting.wait()
            bot.stop.set()  # ... while the shutdown begins (the first answer's grace period)
            await bot.clock.sleeping(3)
            store.claim_gate.set()
            await anyio.wait_all_tasks_blocked()
            assert [a.status for a in answers] == [503]  # at once: WeChat retries elsewhere
        store.claim_gate = None
        incoming = bot.endpoint.handler.parse(*late)
        key = bot.endpoint.deduplicator.key(incoming)
        assert await store.claim(key, 30) is None  # released: its retry is processed
        bot.clock.advance(5)
        await bot.stopped.wait()
    assert len(slow.calls) == 1  # the late push never ran on_message
    [failure] = bot.failures
    assert failure.reason == "shutdown"


class BrokenText(str):
    """A text whose bytes cannot be counted (a bug in the application's own str type)."""

    __slots__ = ()

    def encode(self, *_args: object, **_kwargs: object) -> bytes:
        raise RuntimeError("no bytes today")


async def test_a_bug_before_the_deadline_answers_success_stored_and_reports_it() -> None:
    calls: list[Incoming] = []

    async def fast(incoming: Incoming) -> str:
        calls.append(incoming)
        return BrokenText("hello")

    async with running_bot(fast) as bot:
        request = bot.push()
        assert await bot.post(request) == SUCCESS  # not 503: the work ran
        await bot.endpoint.wait_idle()
        assert await bot.post(request) == SUCCESS  # stored: WeChat's retry does not run it
        assert bot.calls() == []
    assert len(calls) == 1
    [failure] = bot.failures
    assert (failure.reason, type(failure.error), str(failure.error)) == (
        "refused",
        RuntimeError,
        "no bytes today",
    )


async def test_a_bug_while_waiting_for_the_last_message_reports_what_was_queued() -> None:
    async def fast(_incoming: Incoming) -> list[object]:
        return ["1", "2", "3", "4", "5", Exploding()]

    async with running_bot(fast) as bot:
        assert await bot.post(bot.push()) == SUCCESS
        await bot.endpoint.wait_idle()
        assert bot.texts() == ["1", "2", "3", "4"]
    [failure] = bot.failures
    assert (failure.reason, failure.sent) == ("refused", 4)
    assert failure.unsent == (Text(content="5"),)
    assert type(failure.error) is RuntimeError


async def test_an_answer_ending_exactly_as_typing_runs_out_sends_no_cancel() -> None:
    slow = Slow(None, seconds=15)
    async with running_bot(slow) as bot:
        slow.bot = bot
        incoming = bot.endpoint.handler.parse(*bot.push())
        arrived = bot.clock.now() - 15  # past the deadline: "typing..." at once, until +30 s
        answers: list[HTTPAnswer] = []

        async def handle() -> None:
            answers.append(await bot.endpoint.handle(incoming, arrived=arrived))

        async with anyio.create_task_group() as group:
            group.start_soon(handle)
            await bot.clock.sleeping(2)
        assert await step(bot, 2) == arrived + 30  # the answer (nothing) as the typing ends
        await bot.endpoint.wait_idle()
        assert bot.calls() == [("typing", "Typing")]  # WeChat ended it: nothing to cancel
    assert answers == [SUCCESS]
    assert bot.failures == []


async def test_typing_still_showing_between_values_is_renewed_when_it_runs_out() -> None:
    async def stream(_incoming: Incoming) -> AsyncIterator[str | None]:
        await bot.clock.sleep(18.5)
        yield None  # no message: the typing shown at 4 s (until 19 s) goes on
        await bot.clock.sleep(5)
        yield "done"

    async with running_bot(stream) as bot:
        assert await answered_at_deadline(bot, bot.push()) == SUCCESS
        assert await step(bot, 2) == 18.5
        await anyio.wait_all_tasks_blocked()  # the value taken, the typing kept
        assert len(bot.api.requests_to(TYPING)) == 1  # still showing: not sent again
        assert await step(bot, 2) == 19  # renewed as it runs out, not before, not later
        await anyio.wait_all_tasks_blocked()
        assert len(bot.api.requests_to(TYPING)) == 2
        assert await step(bot, 2) == 23.5
        await bot.endpoint.wait_idle()
        assert bot.texts() == ["done"]
    assert bot.failures == []


def test_a_bug_is_reported_as_itself_out_of_nested_groups_of_one() -> None:
    # a bug inside a task group inside the answer's own arrives as groups of one in a group
    from wechat_kf.callback._delivery import _single

    bug = RuntimeError("the bug")
    assert _single(bug) is bug
    assert _single(ExceptionGroup("outer", [ExceptionGroup("inner", [bug])])) is bug
    several = ExceptionGroup("inner", [bug, ValueError("another")])
    assert _single(ExceptionGroup("outer", [several])) is several  # several: the group itself


async def test_shutdown_after_a_message_went_out_reports_it_sent_and_nothing_in_flight() -> None:
    async def stream(_incoming: Incoming) -> AsyncIterator[str]:
        yield "one"
        await bot.clock.sleep(60)  # thinking about the rest
        yield "never"

    async with running_bot(stream, shutdown_grace=0) as bot:
        assert await bot.post(bot.push()) == SUCCESS
        while not bot.texts():
            await anyio.lowlevel.checkpoint()
        await bot.clock.sleeping(1)
        bot.stop.set()
        await bot.stopped.wait()
        assert bot.texts() == ["one"]
    [failure] = bot.failures
    assert (failure.reason, failure.sent, failure.unsent, failure.maybe_sent) == (
        "shutdown",
        1,
        (),
        None,
    )


class Paragraphs:
    """An async iterable that is not an async generator (no ``aclose``)."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    def __aiter__(self) -> Paragraphs:
        return self

    async def __anext__(self) -> str:
        if not self.texts:
            raise StopAsyncIteration
        return self.texts.pop(0)


async def test_an_async_iterable_without_aclose_is_streamed() -> None:
    async def fast(_incoming: Incoming) -> Paragraphs:
        return Paragraphs("first", "second")

    async with running_bot(fast) as bot:
        assert await bot.post(bot.push()) == SUCCESS
        await bot.endpoint.wait_idle()
        assert bot.texts() == ["first", "second"]
    assert bot.failures == []

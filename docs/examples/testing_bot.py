"""Test a bot whose model thinks for 8 seconds, in milliseconds: a VirtualClock stands in for
the time the endpoint, your handler and the fake WeChat wait by."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from wechat_kf.callback import CallbackEndpoint, CallbackHandler, Incoming, TextMessage
from wechat_kf.testing import FakeWeChat, VirtualClock

fake = FakeWeChat()
clock = VirtualClock(follow=fake.clock)  # the fake's windows and typing rules move with it


async def thinking(incoming: Incoming) -> AsyncIterator[str]:
    """The code under test: a model that answers in two paragraphs after 8 seconds."""
    await clock.sleep(8)  # the model, thinking (in your code: the clock you are given)
    yield "第一段：退货在订单页申请。"
    yield "第二段：审核后 3 天内退款。"


async def main() -> None:
    handler = CallbackHandler(token="my_token", appid=fake.appid)
    async with fake.client() as wx:
        bot = CallbackEndpoint(handler, thinking, wechat=wx, clock=clock)
        fake.user_says("o_bot_user", "怎么退货？")  # opens the user's window
        question = TextMessage(  # the push, parsed: no signing needed with handle()
            to_user="gh_demo",
            from_user="o_bot_user",
            create_time=datetime.now(timezone.utc),
            msg_type="text",
            content="怎么退货？",
            msg_id=42,
        )
        async with bot.running():
            push = asyncio.create_task(bot.handle(question))  # WeChat's push
            await clock.sleeping(2)  # the 4 s deadline and the model both wait
            clock.advance(4)
            print((await push).body)  # WeChat gets "success" at the deadline
            clock.advance(4)  # ... and the model answers 8 seconds in
            await bot.wait_idle()
        print([message["text"]["content"] for message in fake.sent_to("o_bot_user")])
        print(f"{clock.now():g} s of virtual time")


asyncio.run(main())
# Output:
# b'success'
# ['第一段：退货在订单页申请。', '第二段：审核后 3 天内退款。']
# 8 s of virtual time

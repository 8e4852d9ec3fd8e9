"""Test your code against the fake WeChat, in-process: no sockets, WeChat's rules."""

import asyncio

from wechat_kf import AsyncWeChat, ResponseWindowError, Text
from wechat_kf.testing import FakeWeChat


async def answer_parcel_questions(wx: AsyncWeChat, openid: str) -> bool:
    """The code under test: answer as agent kf1, or report that WeChat refused."""
    try:
        await wx.message.send(openid, Text(content="on its way"), kf_account="kf1@shop")
    except ResponseWindowError:
        return False
    return True


async def main() -> None:
    fake = FakeWeChat()
    fake.add_agent("kf1@shop", "Ann", online=True)  # seed the world
    fake.user_says("o_customer", "where is my parcel?")  # opens the 48-hour window

    async with fake.client() as wx:  # an AsyncWeChat wired to the fake
        print(await answer_parcel_questions(wx, "o_customer"))
        print(await answer_parcel_questions(wx, "o_never_wrote"))  # 45015, as WeChat answers
        fake.clock.advance(49 * 3600)  # two days later the window is closed
        print(await answer_parcel_questions(wx, "o_customer"))

    print(fake.sent_to("o_customer"))  # what WeChat received, decoded
    print(len(fake.token_requests), "token requests (the first token expired in those two days)")


asyncio.run(main())
# Output:
# True
# False
# False
# [{'touser': 'o_customer', 'msgtype': 'text', 'text': {'content': 'on its way'}, 'customservice': {'kf_account': 'kf1@shop'}}]
# 2 token requests (the first token expired in those two days)

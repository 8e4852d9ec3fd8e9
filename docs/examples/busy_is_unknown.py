"""A send WeChat answered "system busy" (-1): retried by default, or reported as unknown.

WeChat does not document that a -1 means nothing was done; the SDK retries it on that
assumption. Where a message must never reach anyone twice, drop it with busy_is_unknown=True.
This program starts its own fake WeChat to make it answer -1.
"""

import asyncio

from wechat_kf import AsyncWeChat, ServerBusyError, Text
from wechat_kf.testing import FakeWeChat

SEND = "/cgi-bin/message/custom/send"


async def main() -> None:
    fake = FakeWeChat()
    fake.user_says("o_customer")
    with fake.serve() as server:
        async with AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url) as wx:
            fake.inject(SEND, errcode=-1)  # busy once...
            await wx.message.send("o_customer", Text(content="默认：重试"))  # ... then sent
            print(len(fake.sent_to("o_customer")), "delivered after a retry")

            fake.inject(SEND, errcode=-1)
            try:
                await wx.message.send("o_customer", Text(content="只发一次"), busy_is_unknown=True)
            except ServerBusyError as exc:
                print(type(exc).__name__, "may have reached WeChat:", exc.may_have_reached_wechat)


asyncio.run(main())
# Output:
# 1 delivered after a retry
# ServerBusyError may have reached WeChat: True

"""The fake on a real loopback port, with failures scripted the way networks and WeChat fail."""

import asyncio

from wechat_kf import AsyncWeChat, ResponseTimeoutError, Text
from wechat_kf.testing import FakeWeChat


async def main() -> None:
    fake = FakeWeChat()
    fake.user_says("o_customer")
    with fake.serve() as server:  # real HTTP: for code that builds its own client
        async with AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url) as wx:
            fake.inject("/cgi-bin/customservice/getkflist", errcode=-1)  # busy once...
            print(await wx.kf.list())  # ... a read is retried: then fine

            fake.inject("/cgi-bin/message/custom/send", delay=2)  # answers after the timeout
            try:
                await wx.with_options(timeout=0.5).message.send("o_customer", Text(content="hi"))
            except ResponseTimeoutError as exc:  # a send is never retried after it may have left
                print(type(exc).__name__, len(fake.sent_to("o_customer")), "delivered anyway")

    for request in fake.requests:
        print(request.method, request.path)


asyncio.run(main())
# Output:
# []
# ResponseTimeoutError 1 delivered anyway
# POST /cgi-bin/stable_token
# GET /cgi-bin/customservice/getkflist
# GET /cgi-bin/customservice/getkflist
# POST /cgi-bin/message/custom/send

"""Your first program: who the agents are, who waits, and an answer to the first in line.

Against the fake WeChat: run `wechat-kf fake-server --seed demo` in another terminal and paste
the `export ...` line it prints. Against WeChat: export your own WECHAT_APPID and WECHAT_SECRET.
"""

import asyncio
import os

from wechat_kf import AsyncWeChat, Image, Text


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        agents = await wx.kf.list()
        print("agents:", ", ".join(agent.kf_nick for agent in agents))
        waiting = await wx.session.waiting()
        first = waiting.cases[0].openid
        await wx.message.send(first, Text(content="您好，请问有什么可以帮您？"))
        await wx.message.send(first, Image(file="docs/examples/shop.jpg"))  # uploaded once
        print(f"{waiting.count} users waiting; answered {first}")


asyncio.run(main())
# Output:
# agents: Alice 小爱, Bob 小波, Carol 小卡
# 6 users waiting; answered o_customer_001

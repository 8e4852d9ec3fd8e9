"""Sessions: take the users waiting in the queue, see who serves whom, close a session."""

import asyncio
import os

from wechat_kf import AsyncWeChat


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        waiting = await wx.session.waiting()  # .count is the true total, .cases the 100 oldest
        print(waiting.count, "waiting, first:", waiting.cases[0].openid)

        for case in waiting.cases[:2]:
            await wx.session.create("alice@gh_demo", case.openid)  # the agent must be online
        session = await wx.session.get(waiting.cases[0].openid)  # KfSession
        print(session.kf_account, session.is_served)
        served = await wx.session.list("alice@gh_demo")  # list[AgentSession]
        print("alice serves", [s.openid for s in served])

        await wx.session.close("alice@gh_demo", waiting.cases[0].openid)
        print((await wx.session.get(waiting.cases[0].openid)).is_served)
        print((await wx.session.waiting()).count, "still waiting")


asyncio.run(main())
# Output:
# 6 waiting, first: o_customer_001
# alice@gh_demo True
# alice serves ['o_customer_001', 'o_customer_002']
# False
# 4 still waiting

"""One process: the token is fetched once, shared by every call and every with_options copy."""

import asyncio
import os

from wechat_kf import AsyncWeChat


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
        refresh_margin=300,  # refresh 5 minutes before expiry (the default)
    ) as wx:
        # 200 concurrent calls on a cold start make exactly one token request
        answers = await asyncio.gather(*(wx.kf.list() for _ in range(200)))
        print(len(answers), "calls answered")

        patient = wx.with_options(timeout=30, max_retries=5)  # same HTTP client, same token
        print(patient.tokens is wx.tokens)

        token = await wx.access_token()  # for WeChat APIs this SDK does not cover
        print(len(token) > 0, token == await patient.access_token())


asyncio.run(main())
# Output:
# 200 calls answered
# True
# True True

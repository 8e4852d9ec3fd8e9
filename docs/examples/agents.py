"""Agent accounts: add one, invite the person who will use it, rename it, list, delete."""

import asyncio
import os

from wechat_kf import AsyncWeChat


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        await wx.kf.add("dave@gh_demo", "Dave 小戴")  # prefix@wechatid, a 1-16 character nickname
        await wx.kf.invite("dave@gh_demo", "dave_wx_2024")  # the person's own WeChat ID
        await wx.kf.update("dave@gh_demo", "Dave 大卫")
        png = b"\x89PNG\r\n\x1a\n" + bytes(64)  # JPEG or PNG bytes, a path or a binary file
        await wx.kf.upload_avatar("dave@gh_demo", png)

        for account in await wx.kf.list():  # list[KfAccount]
            print(account.kf_account, account.kf_nick, account.kf_id, account.is_bound)
        for online in await wx.kf.list_online():  # list[KfOnlineAccount]
            print(online.kf_account, repr(online.status), online.accepted_case)

        await wx.kf.delete("dave@gh_demo")
        print(len(await wx.kf.list()), "accounts left")


asyncio.run(main())
# Output:
# alice@gh_demo Alice 小爱 1001 True
# bob@gh_demo Bob 小波 1002 True
# carol@gh_demo Carol 小卡 1003 True
# dave@gh_demo Dave 大卫 1004 False
# alice@gh_demo <OnlineStatus.WEB: 1> 0
# bob@gh_demo <OnlineStatus.WEB: 1> 0
# 3 accounts left

"""One message to one user, in each of the shapes WeChat documents."""

import asyncio
import os

from wechat_kf import (
    Article,
    AsyncWeChat,
    MenuItem,
    MiniProgramPage,
    MsgMenu,
    News,
    RawMessage,
    ResponseQuotaError,
    Text,
)


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        user = "o_customer_001"  # wrote in: a 48-hour window for 5 messages is open
        await wx.message.typing(user)  # "typing..." for up to 15 s
        await wx.message.send(user, Text(content="您好，我来帮您查一下"))
        await wx.message.send(
            user,
            News(
                articles=[
                    Article(
                        title="物流查询",
                        description="您的包裹已到达上海",
                        url="https://example.com/track/42",
                        picurl="https://example.com/parcel.jpg",
                    )
                ]
            ),
        )
        await wx.message.send(
            user,
            MsgMenu(
                head_content="这次服务您满意吗？",
                items=[MenuItem(id="101", content="满意"), MenuItem(id="102", content="不满意")],
                tail_content="感谢反馈",
            ),
            kf_account="alice@gh_demo",  # sent as this agent: its nickname and avatar show
        )
        await wx.message.send(
            user,
            MiniProgramPage(
                title="订单详情",
                appid="wxmini",
                pagepath="pages/order?id=42",
                thumb_media_id="thumb_demo_card",  # a permanent material of the account
            ),
            ai_generated=True,  # marks the content as AI-generated
        )
        # A msgtype this SDK does not model yet: WeChat's own JSON shape
        await wx.message.send(
            user, RawMessage(type="text", payload={"content": "还有其他问题吗？"})
        )
        print("sent 5 messages to", user)
        try:
            await wx.message.send(user, Text(content="第六条"))
        except ResponseQuotaError as exc:  # one user message allows 5 answers within 48 hours
            print(type(exc).__name__, exc.errcode)


asyncio.run(main())
# Output:
# sent 5 messages to o_customer_001
# ResponseQuotaError 45047

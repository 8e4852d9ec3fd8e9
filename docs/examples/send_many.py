"""One notice to many users: every recipient gets exactly one result, in input order."""

import asyncio
import os

from wechat_kf import AsyncWeChat, SendStatus, Text


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        members = [f"o_member_{n:03d}" for n in range(100)]  # any iterable or async iterable
        notice = Text(content="【通知】今晚 23:00 维护")

        report = await wx.message.send_many(members, notice, max_concurrency=16)
        print(report.sent, report.failed, report.unknown, report.skipped, report.complete)
        print(dict(report.errcodes))  # refusals by errcode: 45015, the user has not written
        for result in report.with_status(SendStatus.FAILED)[:3]:
            print(result.index, result.openid, result.status.value, result.errcode)

        # Personalised: a callable openid -> message (sync or async)
        nick = {openid: f"会员{n}" for n, openid in enumerate(members)}
        report = await wx.message.send_many(
            members[:3], lambda openid: Text(content=f"{nick[openid]}，您好")
        )
        print({status.value: count for status, count in report.counts.items()})


asyncio.run(main())
# Output:
# 90 10 0 0 True
# {45015: 10}
# 9 o_member_009 failed 45015
# 19 o_member_019 failed 45015
# 29 o_member_029 failed 45015
# {'sent': 3, 'failed': 0, 'unknown': 0, 'skipped': 0}

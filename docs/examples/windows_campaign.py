"""Who can still be reached: the ledger learns from interactions and sends; a campaign goes to
exactly the users reachable now, and nobody the ledger knows is out of reach gets a request."""

import asyncio

from wechat_kf import Text
from wechat_kf.testing import FakeWeChat


async def main() -> None:
    fake = FakeWeChat()  # WeChat, played in-process: it applies the same window rules
    async with fake.client() as wx:
        for fan in ("o_fan_1", "o_fan_2", "o_fan_3"):
            fake.user_says(fan)  # the fan writes in ...
            await wx.windows.opened(fan)  # ... and your callback endpoint records it
        for n in range(5):  # o_fan_3's five messages get spent
            await wx.message.send("o_fan_3", Text(content=f"answer {n}"))

        status = await wx.windows.get("o_fan_1")
        print(status.reachable, status.messages_left, status.windows[0].window)
        print((await wx.windows.get("o_fan_3")).reason)
        print((await wx.windows.get("o_stranger")).reachable)  # unknown: never seen

        # The campaign: exactly the users reachable now
        notice = Text(content="今晚 8 点直播")
        report = await wx.message.send_many(wx.windows.reachable(), notice, skip_unreachable=True)
        print(report.sent, report.skipped)

        # A list of your own: the ledger skips whom it knows cannot be reached
        everyone = ["o_fan_1", "o_fan_3", "o_stranger"]
        report = await wx.message.send_many(everyone, notice, skip_unreachable=True)
        for result in report.results:  # why: WeChat's errcode, or the ledger's reason
            reason = getattr(result.error, "reason", "-")  # an UnreachableError's
            print(result.openid, result.status.value, result.errcode or reason)
        print((await wx.windows.get("o_stranger")).reason)  # learnt from WeChat's 45015


asyncio.run(main())
# Output:
# True 5 message
# no_messages_left
# None
# 2 0
# o_fan_1 sent -
# o_fan_3 skipped no_messages_left
# o_stranger failed 45015
# outside_window

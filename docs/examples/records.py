"""Chat records: one page of at most 24 hours, or any range streamed page by page."""

import asyncio
import collections
import os
from datetime import datetime, timedelta, timezone

from wechat_kf import AsyncWeChat


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        end = datetime.now(timezone.utc) + timedelta(minutes=1)  # aware datetimes, or unix seconds
        page = await wx.records.page(end - timedelta(hours=24), end, msgid=1, number=10)
        print(page.number, "records on the first page; the next starts at msgid", page.msgid)
        first = page.records[0]
        print(first.openid, first.opercode.name, first.text)

        events: collections.Counter[str] = collections.Counter()
        async for record in wx.records.iter(end - timedelta(days=30), end):  # any range length
            events[record.opercode.name] += 1
        for name, count in events.most_common():
            print(f"{name}: {count}")


asyncio.run(main())
# Output:
# 10 records on the first page; the next starts at msgid 10
# o_customer_001 ACCOUNT_RECEIVED_MESSAGE 你好，我的订单还没到
# ACCOUNT_RECEIVED_MESSAGE: 96
# SESSION_CREATED_UNACCEPTED: 6

"""Many processes, one upload: a RedisMediaIdStore shared by every worker of one appid.

Needs `pip install 'wechat_kf[redis]'` and a Redis at REDIS_URL (e.g. redis://localhost:6379/0).
"""

import asyncio
import os
from pathlib import Path

from redis.asyncio import Redis

from wechat_kf import AsyncWeChat, Image, RedisMediaIdStore, RedisTokenStore

PICTURE = Path(__file__).with_name("shop.jpg")


async def worker(redis: Redis, members: list[str]) -> tuple[int, int]:
    """One process of your service: its own client; the tokens and the uploads are shared."""
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
        token_store=RedisTokenStore(redis, prefix="shop:wechat:"),
        media_store=RedisMediaIdStore(redis, prefix="shop:wechat:"),  # one client, every store
    ) as wx:
        report = await wx.message.send_many(members, Image(file=PICTURE))
        return report.sent, wx.media.cache.uploads  # the uploads this process made


async def main() -> None:
    members = [f"o_member_{n:03d}" for n in range(100) if n % 10 != 9]  # 90 who wrote in
    async with Redis.from_url(os.environ["REDIS_URL"], decode_responses=True) as redis:
        done = await asyncio.gather(*(worker(redis, members[n::4]) for n in range(4)))
        print(sum(sent for sent, _ in done), "sent,", sum(n for _, n in done), "upload")
        for key in map(str, await redis.keys("shop:wechat:*:media:*")):  # type and SHA-256
            print(key[: key.rindex(":") + 1] + "<sha256>", sorted(await redis.hkeys(key)))
        await redis.delete(*await redis.keys("shop:wechat:*"))


asyncio.run(main())
# Output:
# 90 sent, 1 upload
# shop:wechat:{wx0123456789abcdef}:media:image:<sha256> ['created_at', 'expires_at', 'media_id', 'type']

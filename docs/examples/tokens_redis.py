"""Many processes, one token: a RedisTokenStore shared by every worker of one appid.

Needs `pip install 'wechat_kf[redis]'` and a Redis at REDIS_URL (e.g. redis://localhost:6379/0).
"""

import asyncio
import os

from redis.asyncio import Redis

from wechat_kf import AsyncWeChat, RedisTokenStore


async def worker(store: RedisTokenStore) -> str:
    """One process of your service: its own client, the shared store."""
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
        token_store=store,
    ) as wx:
        await wx.kf.list()
        return await wx.access_token()


async def main() -> None:
    async with RedisTokenStore.from_url(os.environ["REDIS_URL"], prefix="shop:wechat:") as store:
        tokens = await asyncio.gather(*(worker(store) for _ in range(4)))
        print(len(set(tokens)), "token for 4 workers")

    redis = Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    async with redis:
        for key in sorted(await redis.keys("shop:wechat:*")):
            print(key, sorted(await redis.hkeys(key)))  # the appid is the Cluster hash tag
        await redis.delete(*await redis.keys("shop:wechat:*"))


asyncio.run(main())
# Output:
# 1 token for 4 workers
# shop:wechat:{wx0123456789abcdef}:token ['access_token', 'expires_at']

"""Several workers behind one URL: a RedisDuplicateStore makes a push handled once across them.

Needs `pip install 'wechat_kf[redis]'` and a Redis at REDIS_URL (e.g. redis://localhost:6379/0).
"""

import asyncio
import hashlib
import os
import time

from redis.asyncio import Redis

from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    Deduplicator,
    Incoming,
    RedisDuplicateStore,
    Reply,
)

TOKEN = "my_token"
handler = CallbackHandler(token=TOKEN, appid="wx1234567890abcdef")


def worker(name: str, redis: Redis) -> CallbackEndpoint:
    """One process of your service: its own endpoint, the shared store."""

    async def on_message(incoming: Incoming) -> Reply | None:
        print(name, "handles the push from", incoming.from_user)
        return None

    store = RedisDuplicateStore(redis)  # one Redis client may serve every store
    return CallbackEndpoint(handler, on_message, deduplicator=Deduplicator(store, ttl=300))


def signed() -> dict[str, str]:  # what WeChat does: sign the query with the same token
    timestamp, nonce = str(int(time.time())), "1320562132"
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


PUSH = (
    "<xml><ToUserName>gh_demo</ToUserName><FromUserName>o_customer_005</FromUserName>"
    f"<CreateTime>{int(time.time())}</CreateTime><MsgType>text</MsgType>"
    f"<Content>人工客服</Content><MsgId>{time.time_ns()}</MsgId></xml>"
).encode()


async def main() -> None:
    async with Redis.from_url(os.environ["REDIS_URL"]) as redis:
        a, b = worker("worker A", redis), worker("worker B", redis)
        first = await a.answer("POST", signed(), PUSH)
        retry = await b.answer("POST", signed(), PUSH)  # WeChat's retry lands on another worker
        print(first.status, first.body, "|", retry.status, retry.body)


asyncio.run(main())
# Output:
# worker A handles the push from o_customer_005
# 200 b'success' | 200 b'success'

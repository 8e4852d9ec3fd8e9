"""WeChat retries a push it got no answer for within 5 s: each push is handled once."""

import asyncio
import hashlib
import time

from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    Deduplicator,
    Incoming,
    MemoryDuplicateStore,
    Reply,
)

TOKEN = "my_token"
handler = CallbackHandler(token=TOKEN, appid="wx1234567890abcdef")
handled: list[str] = []
started, release = asyncio.Event(), asyncio.Event()


async def on_message(incoming: Incoming) -> Reply | None:
    handled.append(incoming.from_user)
    started.set()
    await release.wait()  # slow work: a real handler should answer in well under 5 s
    return None


deduplicator = Deduplicator(MemoryDuplicateStore(max_entries=100_000), ttl=300, in_progress_ttl=30)
endpoint = CallbackEndpoint(handler, on_message, deduplicator=deduplicator)  # any framework


def signed() -> dict[str, str]:  # what WeChat does: sign the query with the same token
    timestamp, nonce = str(int(time.time())), "1320562132"
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


PUSH = (
    "<xml><ToUserName>gh_demo</ToUserName><FromUserName>o_customer_004</FromUserName>"
    "<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>优惠券怎么用？</Content>"
    "<MsgId>4</MsgId></xml>"
).encode()


async def main() -> None:
    first = asyncio.create_task(endpoint.answer("POST", signed(), PUSH))
    await started.wait()  # on_message is running...
    retry = await endpoint.answer("POST", signed(), PUSH)  # ... when WeChat retries
    print("retry while in progress:", retry.status, retry.headers.get("Retry-After"))
    release.set()
    print("first:", (await first).status, (await first).body)
    again = await endpoint.answer("POST", signed(), PUSH)
    print("retry once done:", again.status, again.body)
    print("handled", len(handled), "time")


asyncio.run(main())
# Output:
# retry while in progress: 503 5
# first: 200 b'success'
# retry once done: 200 b'success'
# handled 1 time

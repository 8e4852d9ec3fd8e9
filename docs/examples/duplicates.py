"""WeChat retries a push it got no answer for within 5 s: each push is handled once, and every
retry gets the answer the first try gave."""

import asyncio
import hashlib
import time
from xml.etree import ElementTree

from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    Deduplicator,
    Incoming,
    MemoryDuplicateStore,
    Reply,
    TextMessage,
    TextReply,
)

TOKEN = "my_token"
handler = CallbackHandler(token=TOKEN, appid="wx1234567890abcdef")
handled: list[str] = []
started, release = asyncio.Event(), asyncio.Event()


async def on_message(incoming: Incoming) -> Reply | None:
    handled.append(incoming.from_user)
    started.set()
    await release.wait()  # slow work: answer in well under 5 s, or answer at once and send later
    assert isinstance(incoming, TextMessage)
    return TextReply(content=f"优惠券在「我的」页面：{incoming.content}")


endpoint = CallbackEndpoint(  # any framework: endpoint.answer(method, query, body)
    handler,
    on_message,
    deduplicator=Deduplicator(MemoryDuplicateStore(max_entries=100_000), ttl=300),
    retry_wait=4.0,  # a retry waits this long for the first try (inside WeChat's 5 s)
)


def signed() -> dict[str, str]:  # what WeChat does: sign the query with the same token
    timestamp, nonce = str(int(time.time())), "1320562132"
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


PUSH = (
    "<xml><ToUserName>gh_demo</ToUserName><FromUserName>o_customer_004</FromUserName>"
    f"<CreateTime>{int(time.time())}</CreateTime><MsgType>text</MsgType>"
    "<Content>优惠券怎么用？</Content><MsgId>4</MsgId></xml>"
).encode()


async def main() -> None:
    first = asyncio.create_task(endpoint.answer("POST", signed(), PUSH))
    await started.wait()  # on_message is running...
    retry = asyncio.create_task(endpoint.answer("POST", signed(), PUSH))  # ... WeChat retries
    release.set()
    for answer in (await first, await retry):
        print(answer.status, ElementTree.fromstring(answer.body).findtext("Content"))
    late = await endpoint.answer("POST", signed(), PUSH)  # a retry after it was handled
    print(late.body == (await first).body, "| handled", len(handled), "time")


asyncio.run(main())
# Output:
# 200 优惠券在「我的」页面：优惠券怎么用？
# 200 优惠券在「我的」页面：优惠券怎么用？
# True | handled 1 time

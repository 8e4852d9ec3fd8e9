"""A customer-service day against the embedded fake WeChat: ``python -m wechat_kf.demo``.

No credentials and no network: the fake WeChat API runs on a loopback port in this process and
the SDK talks real HTTP to it.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import datetime, timezone

import anyio

from wechat_kf import (
    AsyncWeChat,
    MenuItem,
    MiniProgramPage,
    MsgMenu,
    ResponseWindowError,
    Text,
    WeChatError,
)
from wechat_kf.testing import FakeWeChat

AGENTS = [("alice@gh_demo", "Alice 小爱"), ("bob@gh_demo", "Bob 小波")]


def _say(text: str) -> None:
    print(text, flush=True)


async def run(users: int = 2000) -> int:
    """Run the demo day; returns a process exit code."""
    fake = FakeWeChat()
    started = time.perf_counter()
    with fake.serve() as server:
        _say(f"Fake WeChat API listening on {server.base_url} (no credentials, no network)\n")
        async with AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url) as wx:
            _say("1. Agents join")
            for account, nickname in AGENTS:
                await wx.kf.add(account, nickname)
                await wx.kf.invite(account, f"wx_{account.split('@')[0]}_2024")
                fake.accept_invite(account)
                fake.set_online(account)
            for info in await wx.kf.list():
                line = f"   {info.kf_account:<16} {info.kf_nick:<10} id={info.kf_id}"
                _say(f"{line} bound={info.kf_wx}")

            _say("\n2. Users write in and wait in the queue")
            openids = [f"o_user_{n:05d}" for n in range(users)]
            for openid in openids[:5]:
                fake.user_says(openid, "你好，我的订单还没到", queue=True)
            waiting = await wx.session.waiting()
            _say(f"   {waiting.count} users waiting; oldest: {waiting.cases[0].openid}")

            _say("\n3. Agents take sessions and reply")
            alice, bob = AGENTS[0][0], AGENTS[1][0]
            for n, case in enumerate(waiting.cases):
                agent = alice if n % 2 == 0 else bob
                await wx.session.create(agent, case.openid)
                await wx.message.typing(case.openid)
                await wx.message.send(
                    case.openid, Text(content="您好，我来帮您查一下 🙂"), kf_account=agent
                )
            first = waiting.cases[0].openid
            await wx.message.send(
                first,
                MsgMenu(
                    head_content="这次服务您满意吗？",
                    items=[
                        MenuItem(id="101", content="满意"),
                        MenuItem(id="102", content="不满意"),
                    ],
                    tail_content="感谢反馈",
                ),
                kf_account=alice,
            )
            await wx.message.send(
                first,
                MiniProgramPage(
                    title="订单详情",
                    appid="wxdemo_mini",
                    pagepath="pages/order?id=42",
                    thumb_media_id="THUMB_MEDIA_ID",
                ),
                kf_account=alice,
            )
            for account, _ in AGENTS:
                served = await wx.session.list(account)
                _say(f"   {account} serves {len(served)} users")

            _say(f"\n4. A notice to {users} users (most wrote in the last 48 h)")
            for openid in openids[5:]:
                if int(openid[-5:]) % 10:  # 10% never wrote: WeChat refuses those (45015)
                    fake.user_says(openid, "订阅通知")
            outcomes: Counter[str] = Counter()
            notice = Text(content="【通知】系统将于今晚 23:00 维护 30 分钟。")
            limiter = anyio.CapacityLimiter(32)

            async def send(openid: str) -> None:
                async with limiter:
                    try:
                        await wx.message.send(openid, notice)
                        outcomes["sent"] += 1
                    except ResponseWindowError:
                        outcomes["failed: 45015 outside the 48 h window"] += 1
                    except WeChatError as exc:
                        outcomes[f"failed: {type(exc).__name__}"] += 1

            bulk_start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for openid in openids[5:]:
                    tg.start_soon(send, openid)
            bulk_time = time.perf_counter() - bulk_start
            for outcome, count in sorted(outcomes.items()):
                _say(f"   {outcome:<40} {count:>6}")
            _say(f"   {sum(outcomes.values())} messages in {bulk_time:.2f} s")

            _say("\n5. Sessions close")
            for n, case in enumerate(waiting.cases):
                await wx.session.close(alice if n % 2 == 0 else bob, case.openid)
            _say(f"   {len(await wx.session.list(alice))} sessions left for {alice}")

            _say("\n6. The day's chat records")
            now = int(fake.clock.now())
            kinds: Counter[str] = Counter()
            async for record in wx.records.iter(now - 86400, now + 60):
                kinds[record.opercode.name] += 1
            for name, count in kinds.most_common():
                _say(f"   {name:<32} {count:>6}")
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            _say(
                f"\nDone at {stamp} in {time.perf_counter() - started:.1f} s; "
                f"{len(fake.requests)} HTTP requests, {len(fake.token_requests)} token fetch."
            )
    return 0


def main() -> None:
    """Entry point of ``python -m wechat_kf.demo``."""
    sys.exit(anyio.run(run))


if __name__ == "__main__":
    main()

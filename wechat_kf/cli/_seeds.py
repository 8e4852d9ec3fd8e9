"""The worlds ``wechat-kf fake-server --seed NAME`` starts the fake WeChat with.

Each seed is a function that fills a fresh :class:`~wechat_kf.testing.FakeWeChat` through its
public helpers, the way a test would. The documentation's examples run against ``demo``, so
what it holds is part of what they print: change it and their expected outputs change too.
No click, no rich: the example tests import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from wechat_kf.testing import FakeWeChat

__all__ = ["SEEDS", "describe", "seed"]

#: The agents (``wechat-kf demo``'s too): account, nickname, personal WeChat ID.
AGENTS: Final = (
    ("alice@gh_demo", "Alice 小爱", "alice_wx_2024"),
    ("bob@gh_demo", "Bob 小波", "bob_wx_2024"),
    ("carol@gh_demo", "Carol 小卡", "carol_wx_2024"),
)
#: The agents online: Alice and Bob; Carol is off today.
ONLINE: Final = frozenset({"alice@gh_demo", "bob@gh_demo"})
#: Users who write in and wait in the queue for an agent (in ``wechat-kf demo`` too).
CUSTOMERS: Final = (
    ("o_customer_001", "你好，我的订单还没到"),
    ("o_customer_002", "能开发票吗？"),
    ("o_customer_003", "我想退货"),
    ("o_customer_004", "优惠券怎么用？"),
    ("o_customer_005", "人工客服"),
    ("o_customer_006", "地址写错了"),
)
#: Followers ``o_member_000`` to ``o_member_099``; every tenth one (009, 019, ...) never wrote.
MEMBERS: Final = 100
#: The photo a user sends of a parcel (a JPEG; ``wechat-kf demo``'s too).
PARCEL_PHOTO: Final = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(2048)
#: Media in the library: kind, media_id, permanent (else temporary: 3 days from the start).
#: A permanent picture for mini-program cards and music, and what three users sent in.
MEDIA: Final = (
    ("thumb", "thumb_demo_card", True),
    ("image", "photo_o_customer_003", False),
    ("voice", "voice_o_customer_004", False),
    ("video", "video_o_customer_006", False),
)
#: The bytes of a seeded media, by media_id (others: the fake's sample of the kind).
MEDIA_DATA: Final = {"photo_o_customer_003": PARCEL_PHOTO}


def seed_demo(fake: FakeWeChat) -> None:
    """Agents (two online), six users waiting, a hundred members (90 wrote in), and media."""
    for account, nickname, wechat_id in AGENTS:
        fake.add_agent(account, nickname, bound_to=wechat_id, online=account in ONLINE)
    for openid, text in CUSTOMERS:
        fake.user_says(openid, text, queue=True)
    for n in range(MEMBERS):
        if n % 10 != 9:
            fake.user_says(f"o_member_{n:03d}", "订阅通知")
    for kind, media_id, permanent in MEDIA:
        data = MEDIA_DATA.get(media_id)
        fake.add_media(kind, data, media_id=media_id, permanent=permanent)


def seed_empty(fake: FakeWeChat) -> None:
    """Nothing: no agents, no users, no records."""


#: Seed name -> the function that fills a fake.
SEEDS: Final[dict[str, Callable[[FakeWeChat], None]]] = {"demo": seed_demo, "empty": seed_empty}


def seed(name: str, fake: FakeWeChat | None = None) -> FakeWeChat:
    """``fake`` (default: a new one) filled with the seed ``name``."""
    fake = fake if fake is not None else FakeWeChat()
    SEEDS[name](fake)
    return fake


def describe(name: str) -> list[str]:
    """What the seed ``name`` holds, a line per kind (what ``fake-server`` prints)."""
    if name != "demo":
        return ["no agents, no users, no records"]
    agents = ", ".join(
        f"{account} ({'online' if account in ONLINE else 'offline'})" for account, _, _ in AGENTS
    )
    return [
        f"agents:  {agents}",
        f"waiting: {CUSTOMERS[0][0]} ... {CUSTOMERS[-1][0]} ({len(CUSTOMERS)} users in the queue)",
        f"members: o_member_000 ... o_member_{MEMBERS - 1:03d}; all but every tenth "
        "(009, 019, ...) wrote in the last 48 hours",
        "media:   "
        + ", ".join(f"{media_id} ({kind}, permanent)" for kind, media_id, kept in MEDIA if kept),
        "sent:    "
        + ", ".join(f"{media_id} ({kind})" for kind, media_id, kept in MEDIA if not kept),
    ]

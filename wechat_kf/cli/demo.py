"""``wechat-kf demo``: a whole customer-service day against the embedded fake WeChat.

No credentials and no network: :class:`~wechat_kf.testing.FakeWeChat` serves the API on a
loopback port in this process and the SDK talks real HTTP to it. Agents join, users write in
and wait, agents take the sessions and answer with text, a menu, a picture sent from a file
(uploaded once, and reused as a mini-program card's picture) after downloading the photo a user
sent, a bot answers a question its model takes 8 seconds on (``success`` at WeChat's deadline,
"typing...", the answer later), a notice goes to a few thousand users in bulk (progress bar,
then sent / failed by reason / unknown), the sessions close, and the day's chat records are
exported to a file.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import attrs
import click
from rich.text import Text

from wechat_kf import (
    AsyncWeChat,
    Image,
    MenuItem,
    MiniProgramPage,
    MsgMenu,
    ResponseWindowError,
    _defaults,
)
from wechat_kf import Text as TextMessage
from wechat_kf.cli._bot_demo import BOT_USER, slow_answer
from wechat_kf.cli._bulk import send_all
from wechat_kf.cli._context import Settings, common_options, pass_settings, run
from wechat_kf.cli._messages import Outbound
from wechat_kf.cli._output import Output, describe_error, plural
from wechat_kf.cli._results import UNKNOWN, Outcome
from wechat_kf.cli._seeds import AGENTS, CUSTOMERS, PARCEL_PHOTO
from wechat_kf.cli._summary import OutcomeSummary
from wechat_kf.cli.records import export_records
from wechat_kf.testing import FakeWeChat

__all__ = ["DemoDay", "demo"]

SEND_PATH: Final = "/cgi-bin/message/custom/send"
#: How many users get the bulk notice by default: a few thousand, a few seconds.
DEFAULT_USERS: Final = 3000
#: Connections the demo drops on purpose during the notice, after WeChat took the message.
INJECTED_RESETS: Final = 3
#: How the summary labels the outcomes of those resets (they are not bugs).
INJECTED_LABEL: Final = "(injected by the demo) "
#: A 1×1 PNG: the agents' avatar.
AVATAR: Final = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360606060000000050001a5f645400000000049454e44ae426082"
)
#: The return label an agent sends back (a PNG) for the parcel of ``PARCEL_PHOTO``.
RETURN_LABEL: Final = AVATAR + "return label 退货标签".encode()


class DemoDay:
    """The demo's script: each step calls the SDK and prints what it did (or collects JSON)."""

    def __init__(self, out: Output, *, users: int, export_dir: Path | None, concurrency: int):
        self.out = out
        self.users = users
        self.export_dir = export_dir
        self.concurrency = concurrency
        self.fake: FakeWeChat = FakeWeChat()
        self.report: dict[str, Any] = {}

    def heading(self, text: str) -> None:
        """A section title."""
        self.out.line()
        self.out.line(Text(text, style="bold cyan"))

    async def run(self, transport: str) -> dict[str, Any]:
        """Run the day; returns the machine-readable report."""
        started = time.perf_counter()
        with self.fake.serve() as server:
            self.out.line(
                Text.assemble(
                    ("wechat-kf demo", "bold"),
                    f": a customer-service day against the fake WeChat on {server.base_url}",
                    " (real HTTP on loopback; no credentials, no network)",
                )
            )
            self.report["base_url"] = server.base_url
            async with AsyncWeChat(
                self.fake.appid,
                self.fake.secret,
                base_url=server.base_url,
                transport=transport,  # type: ignore[arg-type]
            ) as wx:
                await self.agents_join(wx)
                await self.users_write_in(wx)
                await self.agents_reply(wx)
                await self.bot_answers(wx)
                await self.bulk_notice(wx)
                await self.sessions_close(wx)
                await self.export(wx)
        seconds = time.perf_counter() - started
        self.report.update(
            requests=len(self.fake.requests),
            token_fetches=len(self.fake.token_requests),
            seconds=round(seconds, 2),
        )
        self.out.line()
        self.out.line(
            Text.assemble(
                ("Done", "bold green"),
                f" in {seconds:.1f} s: {len(self.fake.requests)} HTTP requests, "
                f"{len(self.fake.token_requests)} access-token fetch. "
                "Point the same commands at WeChat with WECHAT_APPID and WECHAT_SECRET.",
            )
        )
        return self.report

    async def agents_join(self, wx: AsyncWeChat) -> None:
        """Add the agents, invite a person to each, who accept; two go online."""
        self.heading("1. Agents join  (wx.kf.add / invite / upload_avatar / list)")
        for account, nickname, wechat_id in AGENTS:
            await wx.kf.add(account, nickname)
            await wx.kf.invite(account, wechat_id)
            self.fake.accept_invite(account)  # the person accepts in WeChat
            await wx.kf.upload_avatar(account, AVATAR)
        for account, _, _ in AGENTS[:2]:
            self.fake.set_online(account)  # Alice and Bob log in; Carol is off today
        accounts = await wx.kf.list()
        online = {a.kf_account: a for a in await wx.kf.list_online()}
        rows = [
            (
                a.kf_account,
                a.kf_nick,
                a.kf_id,
                a.kf_wx,
                online[a.kf_account].status.name.lower() if a.kf_account in online else "offline",
            )
            for a in accounts
        ]
        if not self.out.json_mode:
            self.out.table(["account", "nickname", "id", "bound to", "status"], rows)
        self.report["agents"] = [
            {"kf_account": a.kf_account, "online": a.kf_account in online} for a in accounts
        ]

    async def users_write_in(self, wx: AsyncWeChat) -> None:
        """Users write to the account and wait in the queue."""
        self.heading("2. Users write in and wait  (wx.session.waiting)")
        for openid, text in CUSTOMERS:
            self.fake.user_says(openid, text, queue=True)
        queue = await wx.session.waiting()
        said = dict(CUSTOMERS)
        if not self.out.json_mode:
            self.out.table(
                ["openid", "last message", "says"],
                [(c.openid, c.latest_time, said.get(c.openid, "")) for c in queue.cases],
                title=f"{plural(queue.count, 'user')} waiting",
            )
        self.report["waiting"] = queue.count

    async def agents_reply(self, wx: AsyncWeChat) -> None:
        """Agents take the waiting users and answer: text, a menu, a mini-program card."""
        self.heading("3. Agents take the sessions and reply  (wx.session.create, wx.message.send)")
        alice, bob = AGENTS[0][0], AGENTS[1][0]
        for n, (openid, _) in enumerate(CUSTOMERS):
            agent = alice if n % 2 == 0 else bob
            await wx.session.create(agent, openid)
            await wx.message.typing(openid)
            await wx.message.send(
                openid, TextMessage(content="您好，我来帮您查一下 🙂"), kf_account=agent
            )
        first, second, third = CUSTOMERS[0][0], CUSTOMERS[1][0], CUSTOMERS[2][0]
        menu = MsgMenu(
            head_content="这次服务您满意吗？",
            items=[MenuItem(id="101", content="满意"), MenuItem(id="102", content="不满意")],
            tail_content="感谢反馈",
        )
        await wx.message.send(first, menu, kf_account=alice)
        self.fake.user_says(first, "满意")  # the click comes back as a message (bizmsgmenuid 101)
        # The third user sends a photo of the parcel: the push names it by MediaId; the agent
        # downloads it, and sends back a picture from a file (uploaded once, by content).
        photo = self.fake.add_media("image", PARCEL_PHOTO)
        self.fake.user_says(third, "[image]")
        downloaded = await wx.media.download(photo.media_id)
        label = self.picture_file()
        await wx.message.send(third, Image(file=label), kf_account=alice)
        card = MiniProgramPage(
            title="发票申请",
            appid="wxdemo_mini",
            pagepath="pages/invoice?order=42",
            thumb_file=label,  # the same picture: its upload is reused, not repeated
        )
        await wx.message.send(second, card, kf_account=bob, ai_generated=True)
        sent = [
            (first, alice, "text, then a menu: 满意 / 不满意 (the user clicked 满意)"),
            (second, bob, "text, then a mini-program card with the label as its picture (AI)"),
            (
                third,
                alice,
                f"text; downloaded the user's photo ({len(downloaded):,} bytes), sent the "
                f"return label from {label.name}",
            ),
            ("3 more users", "alice, bob", "text, after a typing indicator"),
        ]
        try:
            await wx.message.send("o_never_wrote", TextMessage(content="hello?"))
        except ResponseWindowError as exc:
            refused = describe_error(exc)
        served = {agent: len(await wx.session.list(agent)) for agent in (alice, bob)}
        if not self.out.json_mode:
            self.out.table(["to", "from", "messages"], sent)
            self.out.line(f"sessions: {alice} serves {served[alice]}, {bob} serves {served[bob]}")
            self.out.line(
                f"pictures: {plural(len(self.fake.uploads), 'upload')} for the label "
                "(sent as a picture and as the card's picture: the media_id is cached)"
            )
            self.out.line(
                Text.assemble(
                    "a message to a user who never wrote is refused: ",
                    ("error: ", "red bold"),
                    refused,
                )
            )
        self.report["sessions"] = served
        self.report["media"] = {
            "uploads": len(self.fake.uploads),
            "downloaded_bytes": len(downloaded),
        }

    def picture_file(self) -> Path:
        """The return label as a file on disk (what ``Image(file=...)`` reads)."""
        directory = self.export_dir or Path(tempfile.mkdtemp(prefix="wechat-kf-demo-"))
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "return-label.png"
        path.write_bytes(RETURN_LABEL)
        return path

    async def bot_answers(self, wx: AsyncWeChat) -> None:
        """A bot's model thinks 8 s: WeChat gets success at 4 s, the answer comes later."""
        self.heading(
            "4. A bot answers after WeChat's 5 seconds  (CallbackEndpoint(wechat=wx): "
            "deadline, typing, late delivery)"
        )
        bot = await slow_answer(self.fake, wx)
        if not self.out.json_mode:
            rows = [(f"{at:.1f} s", what, said) for at, what, said in bot["timeline"]]
            self.out.table(["time", "what", ""], rows, title=f"{BOT_USER} asks the bot")
            self.out.line(
                f"the model ran {plural(bot['model_runs'], 'time')}; its 8 seconds ran on a "
                "virtual clock (the fake's time moves with it)"
            )
        self.report["bot"] = bot

    async def bulk_notice(self, wx: AsyncWeChat) -> None:
        """A notice to every user in one bulk send, with a progress bar and a summary."""
        self.heading(
            f"5. A notice to {self.users:,} users  (bulk send, at most "
            f"{self.concurrency} in flight)"
        )
        openids = [f"o_member_{n:06d}" for n in range(self.users)]
        for n, openid in enumerate(openids):
            if n % 10 == 9:
                continue  # never wrote in: outside the 48-hour window (45015)
            self.fake.user_says(openid, "订阅通知")
            if n % 50 == 3:  # already got the 5 replies one message allows (45047)
                self.fake.user(openid).message_window.sends_left = 0  # type: ignore[union-attr]
        # Connections drop after WeChat took the message: outcome unknown, never resent.
        self.fake.inject(SEND_PATH, reset=True, processed=True, times=INJECTED_RESETS)
        self.out.line(
            f"{INJECTED_RESETS} connections are dropped on purpose after WeChat took the "
            "message, as real networks do: their outcome is unknown, and they are never resent"
        )
        notice = Outbound(message=TextMessage(content="【通知】系统将于今晚 23:00 维护 30 分钟。"))
        summary = OutcomeSummary()
        injected = INJECTED_RESETS
        started = time.perf_counter()
        with self.out.progress("sending the notice", total=len(openids)) as bar:

            def on_outcome(outcome: Outcome) -> None:
                nonlocal injected
                error = outcome.error or ""
                if outcome.status == UNKNOWN and injected and error.startswith("connection lost"):
                    injected -= 1  # one of ours: say so, so that it does not look like a bug
                    outcome = attrs.evolve(outcome, error=INJECTED_LABEL + error)
                summary.add(outcome)
                bar.advance()

            await send_all(
                wx, openids, notice, on_outcome=on_outcome, max_concurrency=self.concurrency
            )
        seconds = time.perf_counter() - started
        pace = len(openids) / seconds if seconds else 0
        summary.render(
            self.out, title=f"{len(openids):,} recipients in {seconds:.2f} s ({pace:,.0f}/s)"
        )
        self.report["bulk"] = {**summary.to_json(), "seconds": round(seconds, 2)}

    async def sessions_close(self, wx: AsyncWeChat) -> None:
        """The agents close their sessions at the end of the day."""
        self.heading("6. Sessions close  (wx.session.close)")
        closed = 0
        for agent, _, _ in AGENTS[:2]:
            for session in await wx.session.list(agent):
                await wx.session.close(agent, session.openid)
                closed += 1
        left = sum([len(await wx.session.list(agent)) for agent, _, _ in AGENTS[:2]])
        self.out.line(f"{closed} sessions closed; {left} left open")
        self.report["sessions_closed"] = closed

    async def export(self, wx: AsyncWeChat) -> None:
        """Export the day's chat records (every page, every 24 h window) to a JSONL file."""
        self.heading("7. The day's chat records  (wx.records.iter → JSONL)")
        directory = self.export_dir or Path(tempfile.mkdtemp(prefix="wechat-kf-demo-"))
        directory.mkdir(parents=True, exist_ok=True)
        now = int(self.fake.clock.now())
        day = datetime.fromtimestamp(now, timezone.utc).date().isoformat()
        path = directory / f"chat-records-{day}.jsonl"
        with path.open("w", encoding="utf-8") as stream:
            events = await export_records(wx, now - 86400, now + 60, stream, output=self.out)
        total = sum(events.values())
        self.out.line(f"{total:,} records exported to {path}")
        self.out.table(["event (opercode)", "records"], events.most_common(), numeric=["records"])
        self.report["records"] = {"file": str(path), "count": total, "events": dict(events)}


@click.command(short_help="A customer-service day against the fake WeChat (no credentials).")
@click.option(
    "--users",
    type=click.IntRange(10, 1_000_000),
    default=DEFAULT_USERS,
    show_default=True,
    help="How many users get the bulk notice.",
)
@click.option(
    "--export-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the day's chat records (default: a new temporary directory).",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, 1000),
    default=_defaults.BULK_MAX_CONCURRENCY,
    show_default=True,
    help="Bulk-send requests in flight at once.",
)
@common_options
@pass_settings
def demo(settings: Settings, users: int, export_dir: Path | None, max_concurrency: int) -> None:
    """Run a customer-service day against the embedded fake WeChat (no credentials, no network).

    Agents join, users write in, agents reply with text, a menu and a mini-program card, a
    notice goes to --users users in bulk, sessions close and the chat records are exported.
    """
    out = settings.output

    async def main() -> None:
        day = DemoDay(out, users=users, export_dir=export_dir, concurrency=max_concurrency)
        report = await day.run(settings.transport)
        if out.json_mode:
            out.emit_json(report)

    run(settings, main)

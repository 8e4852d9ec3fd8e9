"""``wechat-kf sessions``: get, list, waiting, create, close."""

from __future__ import annotations

import click

from wechat_kf.cli._context import Settings, common_options, pass_settings, run
from wechat_kf.cli._output import jsonable, plural

__all__ = ["sessions"]


@click.group()
def sessions() -> None:
    """Sessions (会话): who serves whom, the waiting queue, opening and closing."""


@sessions.command("get")
@click.argument("openid")
@common_options
@pass_settings
def get(settings: Settings, openid: str) -> None:
    """Which agent serves the user OPENID now, and since when."""

    async def main() -> None:
        async with settings.client() as wx:
            session = await wx.session.get(openid)
        out = settings.output
        if out.json_mode:
            out.emit_json({"openid": openid, **jsonable(session)})
            return
        if not session.is_served:
            out.line(f"{openid} is not served by any agent")
            return
        out.table(["openid", "agent", "since"], [(openid, session.kf_account, session.createtime)])

    run(settings, main)


@sessions.command("list")
@click.argument("account")
@common_options
@pass_settings
def list_sessions(settings: Settings, account: str) -> None:
    """The users the agent ACCOUNT serves now."""

    async def main() -> None:
        async with settings.client() as wx:
            served = await wx.session.list(account)
        settings.output.show(
            served,
            ["openid", "since"],
            [(s.openid, s.createtime) for s in served],
            title=f"{account} serves {plural(len(served), 'user')}",
        )

    run(settings, main)


@sessions.command("waiting")
@common_options
@pass_settings
def waiting(settings: Settings) -> None:
    """The users waiting for an agent, oldest first (WeChat shows the 100 oldest)."""

    async def main() -> None:
        async with settings.client() as wx:
            queue = await wx.session.waiting()
        shown = f" (the {len(queue.cases)} oldest shown)" if queue.count > len(queue.cases) else ""
        settings.output.show(
            queue,
            ["openid", "last message", "asked for"],
            [(c.openid, c.latest_time, c.kf_account or "") for c in queue.cases],
            title=f"{plural(queue.count, 'user')} waiting{shown}",
        )

    run(settings, main)


@sessions.command("create")
@click.argument("account")
@click.argument("openid")
@click.option("--text", help="A note for the agent (older WeChat clients show it).")
@common_options
@pass_settings
def create(settings: Settings, account: str, openid: str, text: str | None) -> None:
    """Put the user OPENID with the online agent ACCOUNT."""

    async def main() -> None:
        async with settings.client() as wx:
            await wx.session.create(account, openid, text=text)
        settings.output.success(f"{account} now serves {openid}", kf_account=account, openid=openid)

    run(settings, main)


@sessions.command("close")
@click.argument("account")
@click.argument("openid")
@click.option("--text", help="A closing note for the agent.")
@common_options
@pass_settings
def close(settings: Settings, account: str, openid: str, text: str | None) -> None:
    """End the session between the agent ACCOUNT and the user OPENID."""

    async def main() -> None:
        async with settings.client() as wx:
            await wx.session.close(account, openid, text=text)
        settings.output.success(
            f"closed the session of {openid} with {account}", kf_account=account, openid=openid
        )

    run(settings, main)

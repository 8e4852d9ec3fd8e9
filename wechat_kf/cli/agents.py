"""``wechat-kf agents``: list, online, add, update, delete, invite, avatar."""

from __future__ import annotations

from pathlib import Path

import click

from wechat_kf.cli._context import Settings, common_options, pass_settings, run
from wechat_kf.cli._output import format_time, plural

__all__ = ["agents"]


@click.group()
def agents() -> None:
    """Agent accounts (客服账号): prefix@wechatid, at most 100 per official account."""


@agents.command("list")
@common_options
@pass_settings
def list_agents(settings: Settings) -> None:
    """Every agent account, its binding and any pending invitation."""

    async def main() -> None:
        async with settings.client() as wx:
            accounts = await wx.kf.list()
        rows = [
            (
                a.kf_account,
                a.kf_nick,
                a.kf_id,
                a.kf_wx or "",
                _invite(a.invite_status, a.invite_wx, format_time(a.invite_expire_time)),
            )
            for a in accounts
        ]
        settings.output.show(
            accounts,
            ["account", "nickname", "id", "bound to", "invitation"],
            rows,
            title=plural(len(accounts), "agent account"),
        )

    run(settings, main)


def _invite(status: object, invite_wx: str | None, expires: str) -> str:
    if not invite_wx and status is None:
        return ""
    text = f"{status or 'waiting'} → {invite_wx or '?'}"
    return f"{text} (until {expires})" if expires else text


@agents.command("online")
@common_options
@pass_settings
def online(settings: Settings) -> None:
    """The agents online now and how many sessions each serves."""

    async def main() -> None:
        async with settings.client() as wx:
            accounts = await wx.kf.list_online()
        rows = [
            (
                a.kf_account,
                a.status.name.lower(),
                a.kf_id,
                a.accepted_case,
                "" if a.auto_accept is None else a.auto_accept,
            )
            for a in accounts
        ]
        settings.output.show(
            accounts,
            ["account", "status", "id", "sessions", "auto accept"],
            rows,
            title=f"{plural(len(accounts), 'agent')} online",
            numeric=["sessions", "auto accept"],
        )

    run(settings, main)


@agents.command("add")
@click.argument("account")
@click.argument("nickname")
@common_options
@pass_settings
def add(settings: Settings, account: str, nickname: str) -> None:
    """Create the agent ACCOUNT (prefix@wechatid) shown as NICKNAME (1-16 characters).

    Then bind a person to it with `agents invite`.
    """

    async def main() -> None:
        async with settings.client() as wx:
            await wx.kf.add(account, nickname)
        settings.output.success(f"added {account} ({nickname})", kf_account=account)

    run(settings, main)


@agents.command("update")
@click.argument("account")
@click.argument("nickname")
@common_options
@pass_settings
def update(settings: Settings, account: str, nickname: str) -> None:
    """Change the nickname of ACCOUNT."""

    async def main() -> None:
        async with settings.client() as wx:
            await wx.kf.update(account, nickname)
        settings.output.success(f"{account} is now {nickname}", kf_account=account)

    run(settings, main)


@agents.command("delete")
@click.argument("account")
@common_options
@pass_settings
def delete(settings: Settings, account: str) -> None:
    """Delete the agent ACCOUNT."""

    async def main() -> None:
        async with settings.client() as wx:
            await wx.kf.delete(account)
        settings.output.success(f"deleted {account}", kf_account=account)

    run(settings, main)


@agents.command("invite")
@click.argument("account")
@click.argument("wechat_id")
@common_options
@pass_settings
def invite(settings: Settings, account: str, wechat_id: str) -> None:
    """Invite the person with the personal WeChat ID WECHAT_ID to serve as ACCOUNT.

    The invitation waits 7 days for them to accept in WeChat.
    """

    async def main() -> None:
        async with settings.client() as wx:
            await wx.kf.invite(account, wechat_id)
        settings.output.success(
            f"invited {wechat_id} to {account}", kf_account=account, invite_wx=wechat_id
        )

    run(settings, main)


@agents.command("avatar")
@click.argument("account")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@common_options
@pass_settings
def avatar(settings: Settings, account: str, image: Path) -> None:
    """Set the avatar of ACCOUNT to IMAGE (JPEG or PNG, at most 5 MB; 640×640 recommended)."""

    async def main() -> None:
        async with settings.client() as wx:
            await wx.kf.upload_avatar(account, image)
        settings.output.success(f"avatar of {account} set from {image}", kf_account=account)

    run(settings, main)

"""``wx.kf``: agent accounts (客服账号): list, online list, add, update, delete, invite, avatar."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Final

import attrs

from wechat_kf import _validation as check
from wechat_kf._enums import OpenIntEnum, OpenStrEnum
from wechat_kf._errors import ValidationError
from wechat_kf._files import JPEG, PNG, FileSource, read_source, sniff, upload_form
from wechat_kf._pipeline import Endpoint
from wechat_kf._resource import APIResource
from wechat_kf._retry import RetryMode

__all__ = ["InviteStatus", "KfAPI", "KfAccount", "KfOnlineAccount", "OnlineStatus"]

AVATAR_MAX_BYTES: Final = 5 * 1024 * 1024

_LIST: Final = Endpoint("GET", "/cgi-bin/customservice/getkflist")
_LIST_ONLINE: Final = Endpoint("GET", "/cgi-bin/customservice/getonlinekflist")
_ADD: Final = Endpoint("POST", "/customservice/kfaccount/add", RetryMode.WRITE)
_UPDATE: Final = Endpoint("POST", "/customservice/kfaccount/update", RetryMode.WRITE)
_DELETE: Final = Endpoint("POST", "/customservice/kfaccount/del", RetryMode.WRITE)
_INVITE: Final = Endpoint("POST", "/customservice/kfaccount/inviteworker", RetryMode.WRITE)
_AVATAR: Final = Endpoint("POST", "/customservice/kfaccount/uploadheadimg", RetryMode.WRITE)


class InviteStatus(OpenStrEnum):
    """State of the invitation to bind a personal WeChat account to an agent account."""

    WAITING = "waiting"
    REJECTED = "rejected"
    EXPIRED = "expired"


class OnlineStatus(OpenIntEnum):
    """An agent's online status (``1`` is web online today; older docs: 1 PC, 2 mobile, 3 both)."""

    OFFLINE = 0
    WEB = 1
    MOBILE = 2
    WEB_AND_MOBILE = 3


@attrs.frozen(kw_only=True)
class KfAccount:
    """An agent account as ``getkflist`` returns it (wire field names)."""

    kf_account: str
    kf_nick: str = ""
    kf_id: str = ""
    kf_headimgurl: str = ""
    #: The personal WeChat ID bound to the account, once an invite was accepted.
    kf_wx: str | None = None
    #: The WeChat ID a pending invitation went to.
    invite_wx: str | None = None
    invite_expire_time: datetime | None = None
    invite_status: InviteStatus | None = None
    kf_openid: str | None = None

    @property
    def is_bound(self) -> bool:
        """Whether a personal WeChat account is bound (the agent can log in and serve)."""
        return bool(self.kf_wx)


@attrs.frozen(kw_only=True)
class KfOnlineAccount:
    """An online agent as ``getonlinekflist`` returns it."""

    kf_account: str
    status: OnlineStatus = OnlineStatus.OFFLINE
    kf_id: str = ""
    #: Sessions the agent is serving now.
    accepted_case: int = 0
    #: Most sessions the agent accepts automatically (absent in newer answers).
    auto_accept: int | None = None
    kf_openid: str | None = None


@attrs.frozen(kw_only=True)
class _KfList:
    kf_list: list[KfAccount] = attrs.Factory(list)


@attrs.frozen(kw_only=True)
class _KfOnlineList:
    kf_online_list: list[KfOnlineAccount] = attrs.Factory(list)


#: An avatar: its bytes, a path to the file, or a binary file object.
AvatarSource = FileSource

_AVATAR_FORMATS: Final = (JPEG, PNG)


class KfAPI(APIResource):
    """Agent accounts. Account names are ``prefix@wechatid`` (prefix ≤ 10, WeChat ID ≤ 30)."""

    __slots__ = ()

    async def list(self) -> builtins.list[KfAccount]:
        """Every agent account of the official account (``getkflist``)."""
        return (await self._pipeline.call(_LIST, into=_KfList)).kf_list

    async def list_online(self) -> builtins.list[KfOnlineAccount]:
        """The agents online now, with their status and how many sessions they serve."""
        return (await self._pipeline.call(_LIST_ONLINE, into=_KfOnlineList)).kf_online_list

    async def add(self, kf_account: str, nickname: str) -> None:
        """Create an agent account; it must then be bound with :meth:`invite`."""
        body = {"kf_account": check.kf_account(kf_account), "nickname": check.nickname(nickname)}
        await self._pipeline.call(_ADD, json=body)

    async def update(self, kf_account: str, nickname: str) -> None:
        """Change an agent's nickname (1-16 characters)."""
        body = {"kf_account": check.kf_account(kf_account), "nickname": check.nickname(nickname)}
        await self._pipeline.call(_UPDATE, json=body)

    async def delete(self, kf_account: str) -> None:
        """Delete an agent account."""
        await self._pipeline.call(_DELETE, json={"kf_account": check.kf_account(kf_account)})

    async def invite(self, kf_account: str, invite_wx: str) -> None:
        """Invite a person to bind their WeChat to the account.

        ``invite_wx`` is the agent's personal WeChat ID (not an openid). The invitation expires
        after 7 days; an account with a pending invitation cannot be invited again.
        """
        body = {
            "kf_account": check.kf_account(kf_account),
            "invite_wx": check.non_empty(invite_wx, "invite_wx"),
        }
        await self._pipeline.call(_INVITE, json=body)

    async def upload_avatar(self, kf_account: str, image: AvatarSource) -> None:
        """Set an agent's avatar: JPEG or PNG (detected from the bytes), at most 5 MB.

        ``image`` is the file's bytes, a path, or a binary file object. 640×640 is recommended.
        """
        check.kf_account(kf_account)
        data = await read_source(image, field="image", max_bytes=AVATAR_MAX_BYTES)
        fmt = sniff(data)
        if fmt not in _AVATAR_FORMATS:
            raise ValidationError("image", "must be a JPEG or PNG image (by its content)", None)
        files = upload_form("avatar", data, fmt)
        await self._pipeline.call(_AVATAR, query={"kf_account": kf_account}, files=files)

"""``wx.kf``: agent accounts (客服账号): list, online list, add, update, delete, invite, avatar."""

from __future__ import annotations

import builtins
import os
from datetime import datetime
from typing import IO, Final

import anyio
import attrs

from wechat_kf import _validation as check
from wechat_kf._enums import OpenIntEnum, OpenStrEnum
from wechat_kf._errors import ValidationError
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
AvatarSource = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]

_IMAGE_TYPES: Final = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)


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
        data = await _read_image(image)
        content_type, extension = _image_type(data)
        files = {"media": (f"avatar.{extension}", data, content_type)}
        await self._pipeline.call(_AVATAR, query={"kf_account": kf_account}, files=files)


async def _read_image(image: AvatarSource) -> bytes:
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    elif isinstance(image, str | os.PathLike):
        path = anyio.Path(os.fspath(image))
        try:
            size = (await path.stat()).st_size
        except OSError as exc:
            raise ValidationError("image", f"cannot read the file: {exc.strerror}", image) from exc
        if size > AVATAR_MAX_BYTES:
            raise ValidationError("image", f"must be at most 5 MB (got {size} bytes)", image)
        data = await path.read_bytes()
    elif hasattr(image, "read"):
        data = image.read(AVATAR_MAX_BYTES + 1)
        if not isinstance(data, bytes):
            raise ValidationError("image", "the file object must be opened in binary mode", image)
    else:
        raise ValidationError("image", "must be bytes, a path or a binary file object", image)
    if not data:
        raise ValidationError("image", "must not be empty", image)
    if len(data) > AVATAR_MAX_BYTES:
        raise ValidationError("image", f"must be at most 5 MB (got {len(data)} bytes)", image)
    return data


def _image_type(data: bytes) -> tuple[str, str]:
    for magic, content_type, extension in _IMAGE_TYPES:
        if data.startswith(magic):
            return content_type, extension
    raise ValidationError("image", "must be a JPEG or PNG image (by its content)", None)

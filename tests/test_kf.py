"""``wx.kf``: every agent-account method on the wire and against the fake's rules."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest

from wechat_kf import (
    AsyncWeChat,
    CustomerServiceError,
    InviteStatus,
    KfAccount,
    OnlineStatus,
    ValidationError,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100


async def test_list_on_the_wire_and_typed(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent("kf_1@service", "小王")
    fake.add_agent("kf_2@service", "Bob", bound_to=None)
    accounts = await wx.kf.list()
    (request,) = fake.requests_to("/cgi-bin/customservice/getkflist")
    assert request.method == "GET"
    assert request.body == b""
    assert [a.kf_account for a in accounts] == ["kf_1@service", "kf_2@service"]
    first, second = accounts
    # kf_id drifts between str and int on the wire; one type comes out.
    assert (first.kf_id, second.kf_id) == ("1001", "1002")
    assert first.kf_nick == "小王"
    assert first.is_bound
    assert first.kf_wx == "agent_wx"
    assert not second.is_bound
    assert second.kf_wx is None


async def test_list_online(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent("kf_1@service", online=True, auto_accept=3)
    fake.add_agent("kf_2@service")
    (online,) = await wx.kf.list_online()
    assert online.kf_account == "kf_1@service"
    assert online.status is OnlineStatus.WEB
    assert online.accepted_case == 0
    assert online.auto_accept == 3
    (request,) = fake.requests_to("/cgi-bin/customservice/getonlinekflist")
    assert request.method == "GET"


async def test_add_update_delete_on_the_wire(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.kf.add("test1@test", "客服1")
    await wx.kf.update("test1@test", "客服2")
    (account,) = await wx.kf.list()
    assert account.kf_nick == "客服2"
    await wx.kf.delete("test1@test")
    assert await wx.kf.list() == []
    bodies = {
        path: fake.requests_to(path)[0].body
        for path in (
            "/customservice/kfaccount/add",
            "/customservice/kfaccount/update",
            "/customservice/kfaccount/del",
        )
    }
    assert bodies == {
        "/customservice/kfaccount/add": '{"kf_account":"test1@test","nickname":"客服1"}'.encode(),
        "/customservice/kfaccount/update": '{"kf_account":"test1@test","nickname":"客服2"}'.encode(),
        "/customservice/kfaccount/del": b'{"kf_account":"test1@test"}',
    }
    assert fake.requests_to("/customservice/kfaccount/del")[0].method == "POST"


async def test_add_existing_account_is_65406(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.kf.add("test1@test", "one")
    with pytest.raises(CustomerServiceError) as info:
        await wx.kf.add("test1@test", "again")
    assert info.value.errcode == 65406
    assert len(fake.requests_to("/customservice/kfaccount/add")) == 2  # writes: never retried


async def test_invite_and_its_lifecycle(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent("kf_1@service", bound_to=None)
    await wx.kf.invite("kf_1@service", "agent_wechat_id")
    (request,) = fake.requests_to("/customservice/kfaccount/inviteworker")
    assert request.json() == {"kf_account": "kf_1@service", "invite_wx": "agent_wechat_id"}
    (account,) = await wx.kf.list()
    assert account.invite_wx == "agent_wechat_id"
    assert account.invite_status is InviteStatus.WAITING
    assert isinstance(account.invite_expire_time, datetime)
    assert account.invite_expire_time.tzinfo is timezone.utc
    with pytest.raises(CustomerServiceError) as info:
        await wx.kf.invite("kf_1@service", "agent_wechat_id")
    assert info.value.errcode == 65411  # a pending invitation already exists
    fake.clock.advance(8 * 86400)
    (account,) = await wx.kf.list()
    assert account.invite_status is InviteStatus.EXPIRED


@pytest.mark.parametrize(
    ("image", "content_type", "filename"),
    [(PNG, "image/png", "avatar.png"), (JPEG, "image/jpeg", "avatar.jpg")],
)
async def test_upload_avatar_bytes(
    fake: FakeWeChat, wx: AsyncWeChat, image: bytes, content_type: str, filename: str
) -> None:
    fake.add_agent("kf_1@service")
    await wx.kf.upload_avatar("kf_1@service", image)
    (request,) = fake.requests_to("/customservice/kfaccount/uploadheadimg")
    assert request.method == "POST"
    assert request.raw_query.endswith("&kf_account=kf_1@service")
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="media"; filename="' + filename.encode() + b'"' in request.body
    assert b"Content-Type: " + content_type.encode() in request.body
    assert image in request.body
    (account,) = await wx.kf.list()
    assert account.kf_headimgurl


async def test_upload_avatar_from_path_and_file_object(
    fake: FakeWeChat, wx: AsyncWeChat, tmp_path: Path
) -> None:
    fake.add_agent("kf_1@service")
    path = tmp_path / "me.jpg"
    path.write_bytes(JPEG)
    await wx.kf.upload_avatar("kf_1@service", path)
    await wx.kf.upload_avatar("kf_1@service", str(path))
    await wx.kf.upload_avatar("kf_1@service", io.BytesIO(PNG))
    assert len(fake.requests_to("/customservice/kfaccount/uploadheadimg")) == 3


@pytest.mark.parametrize(
    ("image", "limit"),
    [
        (b"GIF89a" + b"\x00" * 10, "JPEG or PNG"),
        (b"", "empty"),
        (JPEG + b"\x00" * (5 * 1024 * 1024), "5 MB"),
        (io.StringIO("text"), "binary"),
        (12345, "bytes, a path"),
        ("/no/such/file.jpg", "cannot read"),
    ],
)
async def test_upload_avatar_validation(
    fake: FakeWeChat, wx: AsyncWeChat, image: object, limit: str
) -> None:
    with pytest.raises(ValidationError, match=limit) as info:
        await wx.kf.upload_avatar("kf_1@service", image)  # type: ignore[arg-type]
    assert info.value.field == "image"
    assert fake.requests == type(fake.requests)()  # nothing was sent


async def test_kf_account_model_defaults_tolerate_missing_fields() -> None:
    account = KfAccount(kf_account="a@b")
    assert account.kf_id == ""
    assert not account.is_bound

"""The fake's avatar upload: multipart ``media``, JPEG/PNG by magic bytes, at most 5 MB."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.testing.fake_http import OK, RawAPI, errcode
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

UPLOAD = "/customservice/kfaccount/uploadheadimg"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\r\n--x\r\n" * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
LIMIT = 5 * 1024 * 1024


async def _upload(api: RawAPI, kf_account: str | None = "a@gh", **kwargs: Any) -> Any:
    url = api.url(UPLOAD) if kf_account is None else api.url(UPLOAD, kf_account=kf_account)
    response = await api.client.post(url, **kwargs)
    return response.json()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param({"media": ("a.jpg", JPEG, "image/jpeg")}, 0, id="jpeg"),
        pytest.param({"media": ("a.png", PNG, "image/png")}, 0, id="png"),
        pytest.param(
            {"media": ("a.jpg", JPEG[:3] + b"\x00" * (LIMIT - 3), "image/jpeg")}, 0, id="5mb"
        ),
        pytest.param(
            {"media": ("a.jpg", JPEG[:3] + b"\x00" * (LIMIT - 2), "image/jpeg")}, 40009, id="5mb+1"
        ),
        pytest.param({"media": ("a.jpg", b"", "image/jpeg")}, 40009, id="empty"),
        pytest.param({"media": ("a.gif", b"GIF89a" + b"\x00" * 16, "image/gif")}, 40005, id="gif"),
        pytest.param({"media": ("a.jpg", b"not an image", "image/jpeg")}, 40005, id="text"),
        pytest.param({"file": ("a.jpg", JPEG, "image/jpeg")}, 41005, id="wrong-field"),
    ],
)
async def test_upload_rules(
    api: RawAPI, wechat: FakeWeChat, files: dict[str, Any], expected: int
) -> None:
    wechat.add_agent("a@gh")
    assert errcode(await _upload(api, files=files)) == expected
    assert bool(wechat.agents["a@gh"].headimgurl) is (expected == 0)


async def test_upload_sets_the_avatar_url(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh")
    assert await _upload(api, files={"media": ("me.png", PNG, "image/png")}) == OK
    url = f"https://mmbiz.qpic.cn/mmbiz_png/{hashlib.sha1(PNG).hexdigest()}/0"
    answer = await api.get("/cgi-bin/customservice/getkflist")
    assert answer["kf_list"][0]["kf_headimgurl"] == url


async def test_upload_keeps_the_at_sign_raw_in_the_query(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh")
    raw = f"{UPLOAD}?access_token={wechat.issue_token()}&kf_account=a@gh"
    files = {"media": ("a.jpg", JPEG, "image/jpeg")}
    assert (await api.client.post(raw, files=files)).json() == OK
    assert wechat.requests_to(UPLOAD)[-1].raw_query.endswith("&kf_account=a@gh")


@pytest.mark.parametrize(
    ("kf_account", "expected"),
    [pytest.param("b@gh", 65401, id="unknown"), pytest.param(None, 65401, id="missing")],
)
async def test_upload_needs_a_known_account(
    api: RawAPI, wechat: FakeWeChat, kf_account: str | None, expected: int
) -> None:
    wechat.add_agent("a@gh")
    files = {"media": ("a.jpg", JPEG, "image/jpeg")}
    assert errcode(await _upload(api, kf_account, files=files)) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"json": {"media": "abc"}}, id="json-body"),
        pytest.param({"content": b""}, id="no-body"),
        pytest.param({"data": {"media": "abc"}}, id="form-field-not-file"),
        pytest.param(
            {
                "content": b"--b\r\nbroken",
                "headers": {"Content-Type": "multipart/form-data; boundary=b"},
            },
            id="truncated",
        ),
        pytest.param(
            {"content": JPEG, "headers": {"Content-Type": "multipart/form-data"}},
            id="no-boundary",
        ),
    ],
)
async def test_upload_without_a_media_file_is_41005(
    api: RawAPI, wechat: FakeWeChat, kwargs: dict[str, Any]
) -> None:
    wechat.add_agent("a@gh")
    assert errcode(await _upload(api, **kwargs)) == 41005


async def test_upload_is_post_only(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh")
    assert errcode(await api.get(UPLOAD, kf_account="a@gh")) == 43002


async def test_an_escaped_at_sign_names_no_account(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh")
    url = f"{UPLOAD}?access_token={wechat.issue_token()}&kf_account=a%40gh"
    response = await api.client.post(url, files={"media": ("a.png", PNG, "image/png")})
    assert errcode(response.json()) == 65401

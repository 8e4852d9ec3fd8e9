"""The fake's media endpoints over raw HTTP: upload rules, answers, downloads, expiry, sends."""

from __future__ import annotations

from typing import Any

import pytest

from tests.testing.fake_http import T0, RawAPI, errcode
from wechat_kf.testing import FakeWeChat, sample_media
from wechat_kf.testing._media import MEDIA_LIFETIME
from wechat_kf.testing._media_routes import VIDEO_LINK_PATH

pytestmark = pytest.mark.anyio

UPLOAD = "/cgi-bin/media/upload"
GET = "/cgi-bin/media/get"
SEND = "/cgi-bin/message/custom/send"
MB = 1024 * 1024
AMR_FRAME = b"\x3c" + bytes(31)  # 20 ms


async def upload(api: RawAPI, kind: str | None, **files: Any) -> Any:
    params = {} if kind is None else {"type": kind}
    response = await api.client.post(api.url(UPLOAD, **params), files=files or None)
    assert response.status_code == 200
    return response.json()


def media(name: str, data: bytes, content_type: str = "application/octet-stream") -> Any:
    return (name, data, content_type)


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        pytest.param("image", sample_media("image"), 0, id="image-jpeg"),
        pytest.param("image", b"\x89PNG\r\n\x1a\n" + bytes(8), 0, id="image-png"),
        pytest.param("image", b"GIF89a" + bytes(8), 0, id="image-gif"),
        pytest.param("image", b"BM" + bytes(8), 40005, id="image-bmp"),
        pytest.param("image", b"\xff\xd8\xff" + bytes(10 * MB - 3), 0, id="image-10mb"),
        pytest.param("image", b"\xff\xd8\xff" + bytes(10 * MB - 2), 40009, id="image-10mb+1"),
        pytest.param("image", b"", 40009, id="image-empty"),
        pytest.param("voice", sample_media("voice"), 0, id="voice-amr"),
        pytest.param("voice", b"ID3" + bytes(8), 0, id="voice-mp3"),
        pytest.param("voice", b"#!AMR\n" + bytes(2 * MB), 40010, id="voice-2mb+"),
        pytest.param("voice", b"#!AMR\n" + AMR_FRAME * 3001, 40010, id="voice-60s+"),
        pytest.param("voice", sample_media("image"), 40005, id="voice-jpeg"),
        pytest.param("video", sample_media("video"), 0, id="video-mp4"),
        pytest.param("video", sample_media("video") + bytes(10 * MB), 40011, id="video-10mb+"),
        pytest.param("video", b"RIFF" + bytes(16), 40005, id="video-avi"),
        pytest.param("thumb", sample_media("thumb"), 0, id="thumb-jpeg"),
        pytest.param("thumb", b"\xff\xd8\xff" + bytes(64 * 1024), 40012, id="thumb-64kb+"),
        pytest.param("thumb", b"\x89PNG\r\n\x1a\n" + bytes(8), 40005, id="thumb-png"),
    ],
)
async def test_upload_rules(
    api: RawAPI, wechat: FakeWeChat, kind: str, data: bytes, expected: int
) -> None:
    answer = await upload(api, kind, media=media("f.bin", data))
    if expected:
        assert errcode(answer) == expected
        assert wechat.uploads == []
        return
    key = "thumb_media_id" if kind == "thumb" else "media_id"
    assert set(answer) == {"type", key, "created_at"}
    assert (answer["type"], answer["created_at"]) == (kind, T0)
    (held,) = wechat.uploads
    assert (held.media_id, held.type, held.data) == (answer[key], kind, data)
    assert len(held.media_id) == 64


@pytest.mark.parametrize(
    ("kind", "files", "expected"),
    [
        pytest.param("file", {"media": media("a.jpg", sample_media())}, 40004, id="bad-type"),
        pytest.param(None, {"media": media("a.jpg", sample_media())}, 40004, id="no-type"),
        pytest.param("image", {"file": media("a.jpg", sample_media())}, 41005, id="wrong-field"),
        pytest.param("image", {}, 41005, id="no-body"),
    ],
)
async def test_upload_requests_wechat_refuses(
    api: RawAPI, kind: str | None, files: dict[str, Any], expected: int
) -> None:
    assert errcode(await upload(api, kind, **files)) == expected


async def test_download_answers_the_file_with_its_headers(api: RawAPI, wechat: FakeWeChat) -> None:
    held = wechat.add_media("image", b"\x89PNG\r\n\x1a\n" + bytes(100))
    response = await api.client.get(api.url(GET, media_id=held.media_id))
    assert response.status_code == 200
    assert response.content == held.data
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{held.media_id}.png"'
    )
    assert response.headers["cache-control"] == "no-cache, must-revalidate"
    assert wechat.downloads == [held.media_id]


async def test_a_video_answers_its_link_which_serves_it_without_a_token(
    api: RawAPI, wechat: FakeWeChat
) -> None:
    held = wechat.add_media("video")
    answer = await api.get(GET, media_id=held.media_id)
    assert answer == {"video_url": f"http://api.weixin.qq.com{VIDEO_LINK_PATH}?vkey={held.vkey}"}
    response = await api.client.get(answer["video_url"])
    assert (response.status_code, response.content) == (200, held.data)
    assert response.headers["content-type"] == "video/mp4"
    missing = await api.client.get(f"{VIDEO_LINK_PATH}?vkey=nope")
    assert missing.status_code == 404


async def test_media_expire_after_3_days(api: RawAPI, wechat: FakeWeChat) -> None:
    temporary = wechat.add_media("image")
    permanent = wechat.add_media("image", permanent=True)
    wechat.clock.advance(MEDIA_LIFETIME - 1)
    assert (await api.client.get(api.url(GET, media_id=temporary.media_id))).status_code == 200
    wechat.clock.advance(1)
    assert errcode(await api.get(GET, media_id=temporary.media_id)) == 40007
    assert (await api.client.get(api.url(GET, media_id=permanent.media_id))).status_code == 200
    assert errcode(await api.get(GET, media_id="unknown")) == 40007
    assert errcode(await api.get(GET)) == 41006


@pytest.mark.parametrize(
    ("msgtype", "payload"),
    [
        ("image", {"media_id": "{id}"}),
        ("voice", {"media_id": "{id}"}),
        ("video", {"media_id": "{id}", "thumb_media_id": "{thumb}"}),
        ("music", {"musicurl": "u", "hqmusicurl": "h", "thumb_media_id": "{id}"}),
        (
            "miniprogrampage",
            {"title": "t", "appid": "a", "pagepath": "p", "thumb_media_id": "{id}"},
        ),
    ],
)
async def test_sends_naming_unknown_or_expired_media_are_40007(
    api: RawAPI, wechat: FakeWeChat, msgtype: str, payload: dict[str, str]
) -> None:
    wechat.user_says("o_1")
    held, thumb = wechat.add_media(), wechat.add_media("thumb", permanent=True)

    def body(media_id: str) -> dict[str, Any]:
        filled = {k: v.format(id=media_id, thumb=thumb.media_id) for k, v in payload.items()}
        return {"touser": "o_1", "msgtype": msgtype, msgtype: filled}

    assert errcode(await api.post(SEND, body("unknown"))) == 40007
    assert errcode(await api.post(SEND, body(held.media_id))) == 0
    wechat.clock.advance(MEDIA_LIFETIME)
    wechat.user_says("o_1")
    assert errcode(await api.post(SEND, body(held.media_id))) == 40007
    assert len(wechat.sent_to("o_1")) == 1

"""The fake's media endpoints: ``media/upload``, ``media/get``, and the video download link.

Upload: ``type`` must be image/voice/video/thumb (40004); the multipart field ``media`` with a
filename must be there (41005); its size must fit the type (image 10 MB -> 40009, voice 2 MB and
60 s -> 40010, video 10 MB -> 40011, thumb 64 KB -> 40012; empty counts as a bad size) and its
format too, by its bytes (40005). The answer is ``{type, media_id, created_at}``, and for a
thumb ``{type, thumb_media_id, created_at}``, as WeChat answers.

Download: the file itself with ``Content-Type``, ``Content-disposition: attachment;
filename="MEDIA_ID.ext"`` and ``Cache-Control``; a video as JSON ``{"video_url": ...}``, a link
(on the host the request came to) that serves the MP4 without a token; 40007 for an unknown
media or one uploaded more than 3 days ago (fake clock); 41006 without ``media_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from wechat_kf._files import audio_seconds
from wechat_kf.testing._checks import media_part
from wechat_kf.testing._core import FakeReply, RecordedRequest, WeChatFail, route
from wechat_kf.testing._media import MAGIC, MAX_VOICE_SECONDS, SIZE_LIMITS, file_kind

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat

#: Where the fake serves a video's bytes (a ``video_url`` points here, with ``?vkey=``).
VIDEO_LINK_PATH: Final = "/vweixinp.tc.qq.com/download"


@route("POST", "/cgi-bin/media/upload", json_body=False)
def upload(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any]:
    kind = request.query.get("type", "")
    if kind not in MAGIC:
        raise WeChatFail(40004, "invalid media type")
    media = media_part(request)
    limit, size_errcode = SIZE_LIMITS[kind]
    if not media.data or len(media.data) > limit:
        raise WeChatFail(size_errcode, f"invalid {kind} size")
    detected = file_kind(kind, media.data)
    if detected is None:
        raise WeChatFail(40005, "invalid file type")
    if kind == "voice":
        seconds = audio_seconds(media.data)
        if seconds is not None and seconds > MAX_VOICE_SECONDS:
            raise WeChatFail(size_errcode, "invalid voice size, voice playtime out of limit")
    held = fake._hold(kind, media.data, detected)
    fake.uploads.append(held)
    key = "thumb_media_id" if kind == "thumb" else "media_id"
    return {"type": kind, key: held.media_id, "created_at": held.created_at}


@route("GET", "/cgi-bin/media/get")
def get(fake: FakeWeChat, request: RecordedRequest) -> dict[str, Any] | FakeReply:
    media_id = request.query.get("media_id")
    if not media_id:
        raise WeChatFail(41006, "media_id missing")
    media = fake.live_media(media_id)
    fake.downloads.append(media.media_id)
    if media.type == "video":
        host = request.headers.get("host", "api.weixin.qq.com")
        return {"video_url": f"http://{host}{VIDEO_LINK_PATH}?vkey={media.vkey}"}
    return FakeReply(
        body=media.data,
        headers=(
            ("Content-Type", media.content_type),
            ("Content-disposition", f'attachment; filename="{media.media_id}.{media.extension}"'),
            ("Cache-Control", "no-cache, must-revalidate"),
        ),
    )


@route("GET", VIDEO_LINK_PATH, authenticated=False)
def video_link(fake: FakeWeChat, request: RecordedRequest) -> FakeReply:
    media = fake.by_vkey(request.query.get("vkey", ""))
    if media is None or not media.live(fake.clock.now()):
        return FakeReply(status=404, body=b"<html><body>404</body></html>", headers=_HTML)
    return FakeReply(body=media.data, headers=(("Content-Type", media.content_type),))


_HTML: Final = (("Content-Type", "text/html"),)

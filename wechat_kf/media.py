"""``wx.media``: temporary media (临时素材): upload files, download what users send.

What WeChat documents (the current official "新增临时素材" / "获取临时素材" pages and their
English twins, checked against wechatpy, WxJava and EasyWeChat; ``/work/shared/API.md``, "Added
facts"):

* ``POST /cgi-bin/media/upload?access_token=&type=image|voice|video|thumb``, multipart field
  ``media`` with a filename and a content type, answers ``{"type", "media_id", "created_at"}``;
  for ``type=thumb`` the id comes as ``thumb_media_id`` (WxJava and many callers rely on it).
  Temporary media live **3 days**; a ``media_id`` may be reused meanwhile. Permanent materials'
  media_ids work in customer-service messages as well.
* Limits by type (image JPEG/PNG/GIF 10 MB, voice AMR/MP3 2 MB and 60 s, video MP4 10 MB, thumb
  JPEG 64 KB) and which image limit the SDK enforces: see ``wechat_kf._files``. They are checked
  before any request, the format by the file's own bytes.
* Refusals: 40004 invalid media type, 40005 invalid file type (format), 40006 invalid file size,
  40009/40010/40011/40012 invalid image/voice/video/thumb size, 45001 file too large
  (:class:`~wechat_kf.MediaTypeError`, :class:`~wechat_kf.MediaSizeError`); 41005 no media data.
* ``GET /cgi-bin/media/get?media_id=`` answers the file itself (``Content-Type: image/jpeg``,
  ``Content-disposition: attachment; filename="MEDIA_ID.jpg"``), a **video** as JSON
  ``{"video_url": "http://..."}`` (a plain download link, no token; older pages: videos are not
  served over HTTPS), and errors as JSON: 40007 invalid media_id
  (:class:`~wechat_kf.InvalidMediaIdError`), also for media older than 3 days.
* Daily quotas: 100,000 uploads and 200,000 downloads (older pages: 5,000 and 10,000); past
  them, 45009 (:class:`~wechat_kf.DailyQuotaError`).

How the SDK tells a file from an error: by the answer itself (``Pipeline.stream``): a
``Content-disposition`` naming an attachment, or a non-JSON, non-text ``Content-Type``, is the
file; anything else is decoded as JSON and its ``errcode`` raised. (wechatpy hands back the raw
response and lets the caller try ``.json()``; WxJava treats ``application/json`` as an error;
EasyWeChat streams when ``Content-disposition`` names an attachment.)

The media-id cache: messages holding a local file (``Image(file="shop.jpg")``) are uploaded by
:meth:`MediaAPI.resolve` once per content (SHA-256) and type, then the ``media_id`` is reused
until an hour before it expires (:class:`~wechat_kf.MediaIdCache`; a shared store makes that
hold across processes).
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import urlsplit

import anyio
import attrs

from wechat_kf import _defaults
from wechat_kf import _validation as check
from wechat_kf._converter import structure
from wechat_kf._errors import MalformedResponseError, ValidationError
from wechat_kf._files import (
    LIMITS,
    FileFormat,
    FileSource,
    MediaFile,
    MediaType,
    check_media,
    digest,
    media_type,
    read_source,
    upload_form,
)
from wechat_kf._media_ids import MediaIdCache, UploadedMedia
from wechat_kf._pipeline import Endpoint, FileAnswer, Pipeline
from wechat_kf._resource import APIResource
from wechat_kf._retry import RetryMode
from wechat_kf.messages import Message

__all__ = [
    "DownloadedMedia",
    "MediaAPI",
    "MediaFile",
    "MediaStream",
    "MediaType",
    "ResolvedMessage",
    "UploadedMedia",
]

#: A repeated upload (after a timeout, say) only makes one more temporary media_id: retried as a
#: read is.
_UPLOAD: Final = Endpoint("POST", "/cgi-bin/media/upload", RetryMode.READ)
_GET: Final = Endpoint("GET", "/cgi-bin/media/get")

#: Where a download may be written: a path, or a binary file object.
Destination = str | os.PathLike[str] | IO[bytes]


@attrs.frozen(kw_only=True)
class _UploadAnswer:
    media_id: str | None = None
    thumb_media_id: str | None = None
    type: MediaType | None = None
    created_at: Any = None


def _uploaded(payload: dict[str, Any], requested: MediaType, now: float) -> UploadedMedia:
    answer = structure(payload, _UploadAnswer)
    media_id = answer.media_id or answer.thumb_media_id
    if not media_id:
        raise MalformedResponseError("the upload answer holds no media_id")
    created = answer.created_at
    try:
        created_at = float(created) if created not in (None, "") else now
    except (TypeError, ValueError):
        raise MalformedResponseError("the upload answer's created_at is not a time") from None
    return UploadedMedia.created(
        media_id,
        answer.type if answer.type is not None else requested,
        datetime.fromtimestamp(created_at, tz=timezone.utc),
    )


# --------------------------------------------------------------------------- downloads


class MediaStream:
    """A media being downloaded (:meth:`MediaAPI.stream`): what it is, and its bytes.

    Iterate it (``async for chunk in media``) or :meth:`read` it, once. Read failures are the
    SDK's typed :class:`~wechat_kf.TransportError` subclasses.
    """

    __slots__ = ("_answer", "media_id", "video_url")

    def __init__(self, media_id: str, answer: FileAnswer, video_url: str | None) -> None:
        self.media_id: str = media_id
        #: For a video, the download link WeChat answered (the bytes come from there).
        self.video_url: str | None = video_url
        self._answer = answer

    def __repr__(self) -> str:
        return f"<MediaStream {self.media_id} {self.content_type or '?'}>"

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` (``"image/jpeg"``, ``"audio/amr"``...); ``""`` when absent."""
        return self._answer.content_type

    @property
    def filename(self) -> str | None:
        """WeChat's filename (``Content-disposition``), e.g. ``"MEDIA_ID.jpg"``."""
        return self._answer.filename

    @property
    def size(self) -> int | None:
        """The size in bytes, when the answer states it (``Content-Length``)."""
        return self._answer.size

    def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The bytes, chunk by chunk, as they arrive."""
        return self._answer.iter_bytes(chunk_size)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.iter_bytes()

    async def read(self) -> bytes:
        """All the bytes."""
        return await self._answer.read()


@attrs.frozen(kw_only=True)
class DownloadedMedia:
    """A media written to a file (:meth:`MediaAPI.download_to`)."""

    media_id: str
    content_type: str
    #: WeChat's filename (``Content-disposition``), if it gave one.
    filename: str | None
    #: Bytes written.
    size: int
    #: For a video, the download link WeChat answered.
    video_url: str | None = None
    #: Where it was written (``None`` for a file object).
    path: Path | None = None


def _video_url(payload: dict[str, Any]) -> str:
    url = payload.get("video_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise MalformedResponseError(
            f"media/get answered JSON without an error or a video_url: keys {sorted(payload)[:8]}"
        )
    return url


def _link(url: str) -> Endpoint:
    """The unauthenticated endpoint of a download link (named by host and path in errors)."""
    parts = urlsplit(url)
    # (Equivalent mutants: HTTP clients send the method upper-cased, a mode of None retries as
    # READ does, and None is as false.)
    return Endpoint(
        "GET",  # pragma: no mutate
        f"{parts.netloc}{parts.path}",
        RetryMode.READ,  # pragma: no mutate
        authenticated=False,  # pragma: no mutate
    )


# --------------------------------------------------------------------------- messages


@attrs.frozen(kw_only=True)
class ResolvedMessage:
    """A message whose local files are uploaded: :attr:`message` names them by ``media_id``.

    ``uploads`` lists each file's cache key and the media it resolved to (empty when the
    message held no local file): a send that WeChat refuses with 40007 passes it back to
    :meth:`MediaAPI.resolve` as ``stale`` to upload those files again.
    """

    message: Message
    uploads: tuple[tuple[str, UploadedMedia], ...] = ()


class MediaAPI(APIResource):
    """Temporary media: upload (3 days), download, and the uploads behind ``Image(file=...)``."""

    __slots__ = ("_appid", "_cache")

    def __init__(self, pipeline: Pipeline, *, cache: MediaIdCache, appid: str) -> None:
        super().__init__(pipeline)
        self._cache = cache
        self._appid = appid

    @property
    def cache(self) -> MediaIdCache:
        """The media-id cache shared by this client and its ``with_options`` copies."""
        return self._cache

    # ---------------------------------------------------------------- upload

    async def upload(self, source: FileSource | MediaFile, type: MediaType | str) -> UploadedMedia:
        """Upload a temporary media (it lives 3 days): ``POST /cgi-bin/media/upload``.

        ``source`` is the file's bytes, a path, a binary file object, or a
        :class:`~wechat_kf.MediaFile`; ``type`` is ``"image"``, ``"voice"``, ``"video"`` or
        ``"thumb"``. The file is checked first (its format by its bytes, its size, a voice's
        length) and sent as the multipart field ``media``. Every call uploads: messages that
        hold a file (``Image(file=...)``) go through the media-id cache instead.

        Raises:
            ValidationError: the file breaks a documented limit (nothing was sent).
            MediaTypeError, MediaSizeError: WeChat refused the file.
        """
        kind = media_type(type)
        if isinstance(source, MediaFile):
            if source.type is not kind:
                raise ValidationError(
                    "source", f"is a {source.type} file, not a {kind} one", source
                )
            data = await source.read("source")
        else:
            data = await read_source(source, field="source", max_bytes=LIMITS[kind].max_bytes)
        fmt = check_media(data, kind, "source")
        return await self._upload(kind, data, fmt)

    async def _upload(self, kind: MediaType, data: bytes, fmt: FileFormat) -> UploadedMedia:
        payload = await self._pipeline.call(
            _UPLOAD, query={"type": str(kind)}, files=upload_form(str(kind), data, fmt)
        )
        return _uploaded(payload, kind, time.time())

    # ---------------------------------------------------------------- download

    def stream(self, media_id: str) -> AbstractAsyncContextManager[MediaStream]:
        """Download a media as it arrives: ``async with wx.media.stream(id) as media:``.

        ``media.content_type`` and ``media.filename`` are known at once; iterate ``media`` for
        the bytes (``async for chunk in media``) or ``await media.read()``. A video's answer is
        a ``video_url``: the SDK follows it (no token is sent there) and streams the video
        from it; ``media.video_url`` says where from. The bytes of a user's message:
        ``wx.media.stream(message.media_id)``.

        Raises:
            InvalidMediaIdError: 40007, unknown or older than 3 days (the media WeChat keeps
                of what users send expire after 3 days too: download them promptly).
        """
        check.non_empty(media_id, "media_id")
        return self._stream(media_id)

    @asynccontextmanager
    async def _stream(self, media_id: str) -> AsyncIterator[MediaStream]:
        async with self._pipeline.stream(_GET, query={"media_id": media_id}) as answer:
            if isinstance(answer, FileAnswer):
                yield MediaStream(media_id, answer, None)
                return
            url = _video_url(answer)
        async with self._pipeline.stream(_link(url), url=url) as video:
            if not isinstance(video, FileAnswer):
                raise MalformedResponseError(
                    f"the video_url of {media_id} answered JSON, not the video"
                )
            yield MediaStream(media_id, video, url)

    async def download(self, media_id: str) -> bytes:
        """The bytes of a media (a video is fetched from its ``video_url``).

        For large videos prefer :meth:`download_to` or :meth:`stream`, which do not hold the
        whole file in memory. The voice of a ``VoiceMessage`` keeps its ``recognition`` text on
        the message itself; ``download(message.media_id)`` fetches the audio.
        """
        async with self.stream(media_id) as media:
            return await media.read()

    async def download_to(self, media_id: str, destination: Destination) -> DownloadedMedia:
        """Stream a media into ``destination``: a path, or a binary file object.

        A path is written through a temporary file next to it and renamed into place once the
        whole media arrived: a failed download leaves no partial file behind. A symbolic link
        is followed (the file it names is replaced, the link kept), and a path that is not a
        regular file (``os.devnull``, ``/dev/stdout``, a FIFO) is written into as it is, never
        replaced by a file.
        """
        async with self.stream(media_id) as media:
            if isinstance(destination, str | os.PathLike):
                path = Path(os.fspath(destination))
                size = await _write_atomically(media, path)
            else:
                path = None
                size = await _write_to(media, destination)
            return DownloadedMedia(
                media_id=media_id,
                content_type=media.content_type,
                filename=media.filename,
                size=size,
                video_url=media.video_url,
                path=path,
            )

    async def video_url(self, media_id: str) -> str:
        """The download link WeChat answers for a video media, without fetching the video.

        Raises:
            MalformedResponseError: the media is not a video (WeChat answered the file).
        """
        check.non_empty(media_id, "media_id")
        async with self._pipeline.stream(_GET, query={"media_id": media_id}) as answer:
            if isinstance(answer, FileAnswer):
                raise MalformedResponseError(
                    f"{media_id} is not a video: WeChat answered a {answer.content_type} file"
                )
            return _video_url(answer)

    # ---------------------------------------------------------------- messages

    async def resolve(
        self, message: Message, *, stale: ResolvedMessage | None = None
    ) -> ResolvedMessage:
        """Upload the local files of ``message`` (once per content) and name them by media_id.

        A message without local files comes back as is. ``stale``: a resolution whose media
        WeChat refused (40007): those media_ids are dropped from the cache first, so the files
        are uploaded again (once, whoever asks).
        """
        fields = message.media_fields
        if not fields or not message.has_local_files:
            return ResolvedMessage(message=message)
        if stale is not None:
            for key, media in stale.uploads:
                await self._cache.forget(self._appid, key, media.media_id)
        changes: dict[str, Any] = {}
        uploads: list[tuple[str, UploadedMedia]] = []
        for field in fields:
            file: MediaFile | None = getattr(message, field.file)
            if file is None:
                continue
            key, media = await self._media_for(file, f"{type(message).__name__}.{field.file}")
            changes[field.file] = None
            changes[field.target] = media.media_id
            uploads.append((key, media))
        resolved: Message = attrs.evolve(message, **changes)  # type: ignore[misc]
        return ResolvedMessage(message=resolved, uploads=tuple(uploads))

    async def _media_for(self, file: MediaFile, field: str) -> tuple[str, UploadedMedia]:
        data: bytes | None = file.data
        memo: tuple[str, int, int, int] | None = None
        known: str | None = None
        if data is None:
            assert file.path is not None
            try:
                stat = await anyio.Path(file.path).stat()
            except OSError as exc:
                raise ValidationError(field, f"cannot read the file: {exc.strerror}") from exc
            memo = (str(file.path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
            known = self._cache.digests.get(memo)
        if known is None:
            if data is None:
                data = await file.read(field)
            known = digest(data)
            if memo is not None:
                self._cache.digests.set(memo, known, _defaults.MEDIA_DIGEST_TTL)
        key = f"{file.type}:{known}"

        async def upload() -> UploadedMedia:
            # (A copy held and the file read again are the same bytes: no mutant shows.)
            content = data if data is not None else await file.read(field)  # pragma: no mutate
            # The content passed this same check (in file.read or MediaFile.open): the call
            # names its format for the form.
            fmt = check_media(content, file.type, field, file.path)  # pragma: no mutate
            return await self._upload(file.type, content, fmt)

        return key, await self._cache.get_or_upload(self._appid, key, upload)


async def _write_to(media: MediaStream, stream: IO[bytes]) -> int:
    size = 0
    async for chunk in media.iter_bytes(_defaults.MEDIA_DOWNLOAD_CHUNK):
        try:
            stream.write(chunk)
        except TypeError:  # a text-mode file
            raise ValidationError(
                "destination", "must be a binary file object (or a path)", stream
            ) from None
        except OSError as exc:
            raise ValidationError("destination", f"cannot write: {exc.strerror}", stream) from exc
        size += len(chunk)
    return size


async def _write_atomically(media: MediaStream, path: Path) -> int:
    try:
        info = await anyio.Path(path).stat()  # follows symbolic links
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise ValidationError("destination", f"cannot write {path}: {exc.strerror}") from exc
    if info is not None and not stat.S_ISREG(info.st_mode):
        return await _write_in_place(media, path)  # a device, a FIFO: never renamed over
    path = Path(await anyio.Path(path).resolve())  # a link's target is replaced, not the link
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    size = 0
    try:
        async with await anyio.open_file(partial, "wb") as out:
            # (The chunk size shapes the writes, not the file: no mutant of it shows.)
            chunks = media.iter_bytes(_defaults.MEDIA_DOWNLOAD_CHUNK)  # pragma: no mutate
            async for chunk in chunks:
                await out.write(chunk)
                size += len(chunk)
        await anyio.Path(partial).replace(path)
    except OSError as exc:
        await _remove(partial)
        raise ValidationError("destination", f"cannot write {path}: {exc.strerror}") from exc
    except BaseException:
        await _remove(partial)
        raise
    return size


async def _write_in_place(media: MediaStream, path: Path) -> int:
    size = 0
    try:
        async with await anyio.open_file(path, "wb") as out:
            # (The chunk size shapes the writes, not the file: no mutant of it shows.)
            chunks = media.iter_bytes(_defaults.MEDIA_DOWNLOAD_CHUNK)  # pragma: no mutate
            async for chunk in chunks:
                await out.write(chunk)
                size += len(chunk)
    except OSError as exc:
        raise ValidationError("destination", f"cannot write {path}: {exc.strerror}") from exc
    return size


async def _remove(path: Path) -> None:
    with anyio.CancelScope(shield=True), contextlib.suppress(OSError):  # a missing one too
        await anyio.Path(path).unlink()

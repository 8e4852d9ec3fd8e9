"""The one request pipeline every sub-client uses.

``Pipeline.call(endpoint, ...)`` does all the cross-cutting work: it injects the access token,
encodes the JSON body once as compact raw UTF-8, sends it, decodes the answer as JSON whatever
its content type, maps ``errcode`` to the typed exception, recovers once from a rejected token,
retries what may be retried, logs without secrets, and structures the payload into a model.
Sub-clients only describe endpoints and models.

``Pipeline.stream(endpoint, ...)`` is the same pipeline for endpoints that may answer a file
(``/cgi-bin/media/get``): the answer is told apart by what it says about itself (see
:func:`is_file_answer`). JSON answers go through every step above (an error raises, a rejected
token is recovered, a failure retried) and come out as the payload; a file comes out as a
:class:`FileAnswer` whose body streams, its read errors typed and scrubbed like any other.
"""

from __future__ import annotations

import email.message
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import Any, Final, TypeVar, cast, overload
from urllib.parse import quote

import attrs
import httpx

from wechat_kf._converter import INTEGER, structure
from wechat_kf._errors import (
    APIError,
    ClientClosedError,
    ConnectFailedError,
    ConnectionLostError,
    HTTPStatusError,
    MalformedResponseError,
    RequestBuildError,
    ResponseTimeoutError,
    ServerBusyError,
    TransportError,
    ValidationError,
    WeChatError,
    api_error,
)
from wechat_kf._http11 import Answer
from wechat_kf._loops import LoopGuard
from wechat_kf._redaction import ScrubbedCause, get_logger, redact, scrubbed
from wechat_kf._retry import RetryMode, RetryPolicy, Sleep, parse_retry_after
from wechat_kf._tokens import TokenManager
from wechat_kf._transport import DirectSender, PoolSizer

__all__ = ["Endpoint", "FileAnswer", "Pipeline", "encode_json", "is_file_answer"]

T = TypeVar("T")

logger = get_logger("wechat_kf")

#: WeChat's answer when the token was rejected: recover once with a fresh token.
TOKEN_REJECTED: Final = frozenset({40001, 40014, 42001})

_JSON_HEADERS: Final = {"Content-Type": "application/json"}
_EXCERPT: Final = 200
#: Parsed URLs kept per pipeline (endpoints × live tokens).
_URL_CACHE: Final = 128
#: One encoder for every body (``json.dumps`` with options builds a new one per call).
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: ``stream``: the most bytes read from an answer that says it is JSON (WeChat's are tiny).
_JSON_ANSWER_MAX: Final = 1024 * 1024


@attrs.frozen
class Endpoint:
    """One WeChat endpoint: its method, path and whether retrying it is safe."""

    method: str
    path: str
    mode: RetryMode = RetryMode.READ
    #: Sent without an access token (the token endpoints themselves).
    authenticated: bool = True


def encode_json(data: object) -> bytes:
    """Compact JSON as raw UTF-8: never ``\\uXXXX`` (WeChat shows escapes literally or 40033)."""
    try:
        return _ENCODER.encode(data).encode("utf-8")  # pragma: no mutate (codec name's case)
    except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 for it
        raise ValidationError(
            "body", f"must be valid Unicode text: {exc.reason} at position {exc.start}"
        ) from None


def encode_query(params: Mapping[str, str]) -> str:
    """A query string that keeps ``@`` (in ``kf_account``) unescaped, as WeChat expects."""
    items = params.items()
    # Equivalent mutants: the keys are the SDK's own names, and no letter is ever escaped.
    quoted = ((quote(k, safe=""), quote(v, safe="@")) for k, v in items)  # pragma: no mutate
    return "&".join(f"{k}={v}" for k, v in quoted)


def decode_body(content: bytes) -> dict[str, Any]:
    """Decode an answer as a JSON object (WeChat sometimes labels JSON ``text/plain``)."""
    try:
        payload = json.loads(content)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int limit
        cause: BaseException | None = scrubbed(exc)  # JSONDecodeError.doc: the whole body
    else:
        cause = None
    if cause is not None:
        raise MalformedResponseError(
            "response is not JSON", body_excerpt=_excerpt(content)
        ) from cause
    if not isinstance(payload, dict):
        raise MalformedResponseError(
            "response is not a JSON object", body_excerpt=_excerpt(content)
        )
    return payload


def _excerpt(content: bytes) -> str:
    return redact(content[:_EXCERPT].decode("utf-8", "replace"))  # pragma: no mutate (case)


def errcode_of(payload: Mapping[str, Any]) -> int:
    """The payload's ``errcode`` (0 when absent); a malformed one is a typed error."""
    errcode = payload.get("errcode", 0)
    if isinstance(errcode, int) and not isinstance(errcode, bool):
        return errcode
    if isinstance(errcode, str) and INTEGER.fullmatch(errcode.strip()):
        return int(errcode)
    raise MalformedResponseError(f"errcode is not an integer: {type(errcode).__name__}")


def _transport_error(exc: Exception, endpoint: Endpoint) -> TransportError:
    """The typed error for what the HTTP client raised, chained to a scrubbed copy of it."""
    cls: type[TransportError]
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        cls = ConnectFailedError
    elif isinstance(exc, httpx.TimeoutException):
        cls = ResponseTimeoutError
    elif isinstance(exc, httpx.LocalProtocolError | httpx.InvalidURL | UnicodeEncodeError):
        cls = RequestBuildError  # refused before anything was written: an invalid URL or header
    elif isinstance(exc, httpx.TransportError):
        cls = ConnectionLostError
    else:
        cls = TransportError  # something else went wrong in the HTTP client: assume the worst
    cause = scrubbed(exc)
    detail = str(cause) if isinstance(cause, ScrubbedCause) else f"{type(exc).__name__}: {cause}"
    error = cls(detail, method=endpoint.method, path=endpoint.path)
    error.__cause__ = cause
    return error


def _closed_error(endpoint: Endpoint) -> ClientClosedError:
    return ClientClosedError(
        f"{endpoint.method} {endpoint.path}: the client is closed (aclose() was called, or the "
        "owner of its httpx.AsyncClient closed it); nothing was sent. Keep one client open for "
        "the application's lifetime and close it once at shutdown"
    )


def _body_of(response: httpx.Response, chunk_size: int | None = None) -> AsyncGenerator[bytes]:
    """httpx's body iterator (an async generator, whatever its annotation says)."""
    return cast("AsyncGenerator[bytes]", response.aiter_bytes(chunk_size))  # pragma: no mutate


def is_file_answer(response: httpx.Response) -> bool:
    """Whether an answer is a file rather than JSON, by what it says about itself.

    A ``Content-Disposition`` naming an attachment or a filename is a file (WeChat's media
    answers carry one). Otherwise the ``Content-Type`` decides: JSON, any ``text/*`` (WeChat
    labels some JSON ``text/plain``) or none at all is JSON; anything else (``image/jpeg``,
    ``audio/amr``, ``video/mp4``, ``application/octet-stream``...) is a file.
    """
    headers = response.headers  # case-insensitive: mutants of the names' case are equivalent
    disposition = headers.get("content-disposition", "").lower()  # pragma: no mutate
    if "attachment" in disposition or "filename" in disposition:
        return True
    labelled = headers.get("content-type", "")  # pragma: no mutate
    content_type = labelled.partition(";")[0].strip().lower()
    return not (
        content_type in ("", "application/json")
        or content_type.startswith("text/")
        or content_type.endswith("+json")
    )


def _read_failure(exc: Exception, endpoint: Endpoint) -> TransportError:
    """The typed error for a failure while reading an answer's body (scrubbed, as a send's)."""
    if isinstance(exc, httpx.StreamError) and not isinstance(exc, httpx.HTTPError):
        # Read twice, or after its block closed it: a misuse, not the network.
        return TransportError(
            f"the answer's body was already read or closed ({type(exc).__name__}): read it "
            "once, inside its async with block",
            method=endpoint.method,
            path=endpoint.path,
        )
    return _transport_error(exc, endpoint)


class FileAnswer:
    """A file WeChat answered (:meth:`Pipeline.stream`): its headers now, its body streamed.

    Read it once, with :meth:`iter_bytes` or :meth:`read`; failures while reading are the SDK's
    typed :class:`~wechat_kf.TransportError` subclasses, never raw httpx errors. Closing it
    (:meth:`aclose`, which :meth:`Pipeline.stream` does) closes its iterators and the answer.
    """

    __slots__ = ("_endpoint", "_iterators", "_response")

    def __init__(self, response: httpx.Response, endpoint: Endpoint) -> None:
        self._response = response
        self._endpoint = endpoint
        self._iterators: list[AsyncGenerator[bytes, None]] = []

    def __repr__(self) -> str:
        return f"<FileAnswer {self.content_type or '?'} {self.size or '?'} bytes>"

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` without parameters (``"image/jpeg"``); ``""`` when absent."""
        content_type = str(self._response.headers.get("content-type", ""))
        return content_type.partition(";")[0].strip().lower()

    @property
    def filename(self) -> str | None:
        """The filename of the ``Content-Disposition`` header, if any."""
        disposition = self._response.headers.get("content-disposition")
        if not disposition:
            return None
        header = email.message.Message()
        header["content-disposition"] = disposition
        name = header.get_filename()
        return None if name is None else str(name)

    @property
    def size(self) -> int | None:
        """The ``Content-Length``, if the answer states it."""
        length = self._response.headers.get("content-length", "")
        return int(length) if length.isascii() and length.isdigit() else None

    def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The body, chunk by chunk, as it arrives."""
        iterator = self._chunks(chunk_size)
        self._iterators.append(iterator)
        return iterator

    async def _chunks(self, chunk_size: int | None) -> AsyncGenerator[bytes, None]:
        failure: TransportError | None = None
        try:
            async with aclosing(_body_of(self._response, chunk_size)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except Exception as exc:  # httpx's errors, and anything else the stream raises
            failure = _read_failure(exc, self._endpoint)
        if failure is not None:
            # Raised outside the except block: the client's exception (its request URL holds
            # the access token) must not stay chained as the __context__.
            raise failure

    async def read(self) -> bytes:
        """The whole body."""
        async with aclosing(self._chunks(None)) as chunks:
            return b"".join([chunk async for chunk in chunks])

    async def aclose(self) -> None:
        """Close the iterators handed out and the answer itself."""
        iterators, self._iterators = self._iterators, []
        for iterator in iterators:
            await iterator.aclose()
        await self._response.aclose()


async def _read_json_answer(response: httpx.Response, endpoint: Endpoint) -> bytes:
    """A streamed answer that says it is JSON, read whole (bounded) and closed."""
    chunks: list[bytes] = []
    size = 0
    failure: WeChatError | None = None
    try:
        async with aclosing(_body_of(response)) as body:
            async for chunk in body:
                chunks.append(chunk)
                size += len(chunk)
                if size > _JSON_ANSWER_MAX:
                    labelled = response.headers.get("content-type")  # pragma: no mutate (case)
                    failure = MalformedResponseError(
                        f"a {labelled or 'untyped'} answer of more "
                        f"than {_JSON_ANSWER_MAX} bytes is neither JSON nor a file",
                        body_excerpt=_excerpt(chunks[0]),
                    )
                    break
    except Exception as exc:  # httpx's errors: raised below, not chained (see FileAnswer)
        failure = _read_failure(exc, endpoint)
    finally:
        await response.aclose()
    if failure is not None:
        raise failure
    return b"".join(chunks)


class Pipeline:
    """Sends requests for one facade: shared HTTP client and tokens, its own timeout and retries."""

    __slots__ = (
        "_base_url",
        "_direct",
        "_guard",
        "_http",
        "_pool",
        "_sleep",
        "_timeout",
        "_timeouts",
        "_urls",
        "retry",
        "tokens",
    )

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        tokens: TokenManager | None,
        retry: RetryPolicy,
        timeout: httpx.Timeout | None,
        sleep: Sleep,
        pool: PoolSizer | None = None,
        guard: LoopGuard | None = None,
    ) -> None:
        self._http = http
        self._guard = guard if guard is not None else LoopGuard()
        self._base_url = base_url.rstrip("/")
        self.tokens: TokenManager | None = tokens
        self.retry: RetryPolicy = retry
        self._timeout: Any = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        self._sleep = sleep
        self._pool = pool
        # The SDK's own client: its transport is called directly, without httpx's request and
        # response objects (the client has no hooks, auth or cookies to honour). A caller's
        # client is always used through httpx.AsyncClient.request.
        self._direct = pool if isinstance(pool, DirectSender) and timeout is not None else None
        self._timeouts = None if timeout is None else timeout.as_dict()
        self._urls: dict[tuple[str, str, str], object] = {}

    @property
    def max_connections(self) -> int | None:
        """The connection limit of the SDK's own pool; ``None`` for a caller's ``http_client``."""
        return None if self._pool is None else self._pool.max_connections

    def ensure_connections(self, connections: int) -> int | None:
        """Grow the SDK's own pool to ``connections``; the limit now (``None``: not ours)."""
        return None if self._pool is None else self._pool.ensure_capacity(connections)

    def derive(self, *, retry: RetryPolicy, timeout: httpx.Timeout | None) -> Pipeline:
        """A pipeline on the same HTTP client and tokens with other timeout/retry options."""
        return Pipeline(
            http=self._http,
            base_url=self._base_url,
            tokens=self.tokens,
            retry=retry,
            timeout=timeout if timeout is not None else self._timeout_or_none(),
            sleep=self._sleep,
            pool=self._pool,
            guard=self._guard,
        )

    def _token_url(
        self, method: str, url: str, token: str, direct: DirectSender | None
    ) -> httpx.URL | object:
        """``url?access_token=token``, parsed once per endpoint and token.

        httpx parses a URL string character by character (the token alone is ~130 of them); a
        parsed ``httpx.URL`` is used as is. For the direct path, the request is rendered once.
        """
        key = (method, url, token)
        parsed = self._urls.get(key)  # pragma: no mutate (a cache)
        if parsed is None:
            if len(self._urls) >= _URL_CACHE:  # pragma: no mutate (a cache's size)
                self._urls.clear()  # old tokens; the few live entries come back at once
            full = f"{url}?access_token={token}"
            parsed = direct.prepare(method, full) if direct is not None else httpx.URL(full)
            self._urls[key] = parsed  # pragma: no mutate (a cache)
        return parsed

    def _exchange(
        self,
        method: str,
        url: Any,
        content: bytes | None,
        files: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        direct: DirectSender | None,
    ) -> Awaitable[httpx.Response | Answer]:
        """One HTTP exchange (its awaitable): directly through the SDK's transport, or through
        the client. (Not a coroutine of its own: one frame less per request on the hot path.)"""
        if direct is None:
            return self._http.request(
                method, url, content=content, files=files, headers=headers, timeout=self._timeout
            )
        if self._http.is_closed:  # refused, as on the client's own path: _send says why
            raise RuntimeError("closed")  # pragma: no mutate (any error: ClientClosedError)
        assert self._timeouts is not None
        target = direct.prepare(method, url) if isinstance(url, str) else url
        return direct.send(target, content, self._timeouts)

    def _timeout_or_none(self) -> httpx.Timeout | None:
        return self._timeout if isinstance(self._timeout, httpx.Timeout) else None

    @overload
    async def call(
        self,
        endpoint: Endpoint,
        *,
        query: Mapping[str, str] | None = ...,
        json: object = ...,
        content: bytes | None = ...,
        files: Mapping[str, Any] | None = ...,
        into: None = ...,
    ) -> dict[str, Any]: ...

    @overload
    async def call(
        self,
        endpoint: Endpoint,
        *,
        query: Mapping[str, str] | None = ...,
        json: object = ...,
        content: bytes | None = ...,
        files: Mapping[str, Any] | None = ...,
        into: type[T],
    ) -> T: ...

    async def call(
        self,
        endpoint: Endpoint,
        *,
        query: Mapping[str, str] | None = None,
        json: object = None,
        content: bytes | None = None,
        files: Mapping[str, Any] | None = None,
        into: type[T] | None = None,
    ) -> T | dict[str, Any]:
        """Call ``endpoint``; return its decoded payload, structured ``into`` a model if given.

        ``json`` is encoded here; ``content`` is a body already encoded by :func:`encode_json`
        (bulk sends encode a message once and splice each recipient in).
        """
        if content is None and json is not None:
            content = encode_json(json)
        answer = await self._send(endpoint, query, content, files)
        payload = cast("dict[str, Any]", answer)  # pragma: no mutate (typing only)
        if into is None:
            return payload
        return structure(payload, into)

    @asynccontextmanager
    async def stream(
        self,
        endpoint: Endpoint,
        *,
        query: Mapping[str, str] | None = None,
        url: str | None = None,
    ) -> AsyncIterator[dict[str, Any] | FileAnswer]:
        """Call ``endpoint``; its JSON payload, or the file it answered (streamed, then closed).

        Every step of :meth:`call` applies until the answer is known to be a file: token
        injection and recovery, retries, errcode mapping. ``url`` replaces the base URL and
        path (an unauthenticated link WeChat handed out, such as a video's ``video_url``).
        """
        answer = await self._send(endpoint, query, None, None, stream=True, url=url)
        if isinstance(answer, dict):
            yield answer
            return
        file = FileAnswer(answer, endpoint)
        try:
            yield file
        finally:
            await file.aclose()

    async def _send(
        self,
        endpoint: Endpoint,
        query: Mapping[str, str] | None,
        content: bytes | None,
        files: Mapping[str, Any] | None,
        *,
        stream: bool = False,
        url: str | None = None,
    ) -> dict[str, Any] | httpx.Response:
        if not self._guard.matches():
            await self._guard.refuse(endpoint.method, endpoint.path)
        headers = None if content is None else _JSON_HEADERS
        direct = self._direct if files is None and not stream else None
        url = url or self._base_url + endpoint.path
        extra_query = encode_query(query) if query else ""
        tokens = self.tokens if endpoint.authenticated else None
        attempt = 0
        token_recovered = False  # pragma: no mutate (None is as false)
        token: str | None = None  # pragma: no mutate (read only when tokens is not None)
        recovered: str | None = None  # pragma: no mutate ("" is as None)
        while True:
            full_url: str | httpx.URL | object
            if tokens is not None:
                token = recovered or await tokens.get()
                recovered = None  # pragma: no mutate ("" is as None)
                if extra_query:
                    full_url = f"{url}?access_token={token}&{extra_query}"
                else:
                    full_url = self._token_url(endpoint.method, url, token, direct)
            else:
                full_url = f"{url}?{extra_query}" if extra_query else url
            started = time.perf_counter()
            response: httpx.Response | Answer
            try:
                try:
                    if stream:
                        assert isinstance(full_url, str | httpx.URL)  # direct is None
                        request = self._http.build_request(
                            endpoint.method, full_url, timeout=self._timeout
                        )  # no body: no headers of ours
                        # A link WeChat handed out (no token in it) may redirect to its CDN; a
                        # URL holding the token is never sent anywhere else.
                        response = await self._http.send(
                            request, stream=True, follow_redirects=tokens is None
                        )
                    else:
                        response = await self._exchange(
                            endpoint.method, full_url, content, files, headers, direct
                        )
                except Exception as exc:  # httpx's errors, and anything else the client raises
                    if direct is not None and isinstance(exc, httpx.TransportError):
                        # As on the client's path, the error names its request: the URL
                        # without its query.
                        exc.request = httpx.Request(endpoint.method, url)
                    failure: WeChatError | None = (
                        _closed_error(endpoint)
                        if self._http.is_closed
                        else _transport_error(exc, endpoint)
                    )
                else:
                    failure = None
                if failure is not None:
                    # Raised outside the except block: the client's own exception (its request
                    # URL holds the access token) must not stay chained as the __context__.
                    raise failure
                status = response.status_code
                if logger.isEnabledFor(logging.DEBUG):  # every exchange, whichever transport
                    ms = (time.perf_counter() - started) * 1000  # pragma: no mutate (logged)
                    logger.debug(
                        "%s %s: HTTP %d in %.1f ms", endpoint.method, endpoint.path, status, ms
                    )
                if status >= 400:
                    # (Closing an answer already read is harmless: the condition's mutants are.)
                    if stream and isinstance(response, httpx.Response):  # pragma: no mutate
                        await response.aclose()
                    retry_after = response.headers.get("Retry-After")  # pragma: no mutate (case)
                    raise HTTPStatusError(
                        status,
                        method=endpoint.method,
                        path=endpoint.path,
                        retry_after=parse_retry_after(retry_after),
                    )
                if isinstance(response, httpx.Response) and stream:
                    if is_file_answer(response):
                        return response  # the caller streams the body, then closes it
                    body = await _read_json_answer(response, endpoint)
                else:
                    body = response.content
                payload = decode_body(body)
                errcode = errcode_of(payload)
                if errcode == 0:
                    return payload
                errmsg = payload.get("errmsg")
                error = api_error(
                    errcode,
                    redact(errmsg) if isinstance(errmsg, str) else "",
                    token_endpoint=not endpoint.authenticated,
                )
                if endpoint.mode is RetryMode.WRITE_STRICT and isinstance(error, ServerBusyError):
                    error.may_have_reached_wechat = True  # -1 not trusted to mean "nothing done"
                raise error
            except APIError as exc:
                if (
                    tokens is not None
                    and token is not None
                    and exc.errcode in TOKEN_REJECTED
                    and not token_recovered
                ):
                    token_recovered = True
                    logger.info(
                        "%s %s: token rejected (errcode %d), refreshing once",
                        endpoint.method,
                        endpoint.path,
                        exc.errcode,
                    )
                    recovered = await tokens.recover(token)
                    continue
                delay = self.retry.delay_for(exc, endpoint.mode, attempt)
                if delay is None:
                    raise
                self._log_retry(endpoint, exc, attempt, delay)
            except (TransportError, MalformedResponseError) as exc:
                delay = self.retry.delay_for(exc, endpoint.mode, attempt)  # never a malformed one
                if delay is None:
                    raise
                self._log_retry(endpoint, exc, attempt, delay)
            attempt += 1
            await self._sleep(delay)

    def _log_retry(
        self, endpoint: Endpoint, error: WeChatError, attempt: int, delay: float
    ) -> None:
        logger.info(
            "%s %s failed (%s); retry %d/%d in %.2f s",
            endpoint.method,
            endpoint.path,
            error,
            attempt + 1,
            self.retry.max_retries,
            delay,
        )

"""Keep access tokens and secrets out of every text the SDK exposes.

WeChat wants the access token in the query string, so it travels in every URL. httpx logs that
URL at INFO (``HTTP Request: POST https://...?access_token=...``) and keeps it on its exceptions.
This module redacts both, and offers :func:`redact` for anything else that may hold a secret.
"""

from __future__ import annotations

import logging
import re
from typing import Final

import httpx

REDACTED: Final = "***"

_SECRET_NAMES = r"access_token|secret|appsecret|encoding_aes_key|encodingaeskey"
_QUERY_SECRET = re.compile(rf"(?i)\b({_SECRET_NAMES})=([^&\s\"'#]+)")
# The closing quote is optional: a body cut short (an excerpt) is redacted to its end.
_JSON_SECRET = re.compile(rf"(?i)(\"(?:{_SECRET_NAMES})\"\s*:\s*\")((?:[^\"\\]|\\.)*)(\"?)")


def redact(text: str) -> str:
    """Replace every token or secret in ``text`` (query-string or JSON form) with ``***``."""
    if "=" not in text and '"' not in text:
        return text
    text = _QUERY_SECRET.sub(rf"\1={REDACTED}", text)
    return _JSON_SECRET.sub(rf"\g<1>{REDACTED}\3", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: logging reports that itself; redact the parts
            pass
        else:
            # Redact the message as it will be shown: redacting the format string alone would
            # eat a placeholder (``access_token=%s``) and leave its argument unconsumed.
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, ()
            return True
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in args)
        elif isinstance(args, dict):
            record.args = {key: _redact_arg(value) for key, value in args.items()}
        return True


def _redact_arg(arg: object) -> object:
    if isinstance(arg, httpx.URL | str):
        text = str(arg)
        redacted = redact(text)
        return arg if redacted == text else redacted
    return arg


_FILTER: Final = RedactingFilter()
#: httpx logs ``HTTP Request: <method> <url> ...`` on this logger.
_LOGGERS: Final = ("httpx", "wechat_kf")
_PACKAGE: Final = "wechat_kf"


def _attach(logger: logging.Logger) -> logging.Logger:
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the redacting filter attached: use it for every logger.

    A logger's filters run only for records created on that very logger, not for records
    propagating up from its children, so a filter on ``wechat_kf`` never sees a record of
    ``wechat_kf.tokens``. Every logger of the package must carry the filter itself.
    """
    return _attach(logging.getLogger(name))


def install_log_redaction() -> None:
    """Attach the redacting filter to httpx's logger and every ``wechat_kf`` logger (idempotent).

    A filter on a logger sees every record that logger creates, whatever handlers the
    application configured, so the token in httpx's request line never reaches a handler.
    Loggers made later with :func:`get_logger` carry the filter from the start.
    """
    for name in _LOGGERS:
        _attach(logging.getLogger(name))
    # Child loggers that exist already (made with plain ``logging.getLogger``).
    for name, existing in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith(_PACKAGE + ".") and isinstance(existing, logging.Logger):
            _attach(existing)


class ScrubbedCause(Exception):
    """Stands in, in an exception chain, for a foreign exception that may hold a secret.

    Its text names the original type (``original_type``) and repeats the original's text,
    redacted. It has no cause, context, traceback or attribute of its own: whatever the original
    kept (a response body, a request with its URL, frames with local variables) is neither kept
    alive nor shown. Build it with :func:`scrubbed`.
    """

    def __init__(self, text: str, original_type: str) -> None:
        #: ``module.QualifiedName`` of the exception this stands for.
        self.original_type = original_type
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.original_type))


def _safe_request(exc: httpx.RequestError) -> httpx.Request | None:
    try:
        request = exc.request
    except RuntimeError:  # no request attached
        return None
    return httpx.Request(request.method, redact(str(request.url)))


def scrubbed(exc: BaseException) -> BaseException:
    """A copy of ``exc`` that is safe to chain: no secret, no chain, no traceback.

    httpx's request errors are rebuilt as the same class with their text redacted and a
    request whose URL is redacted (so ``__cause__.request.url`` still says where it went);
    anything else becomes a :class:`ScrubbedCause`. Chain the copy, and raise outside the
    ``except`` block that caught ``exc`` (or ``exc`` would still be the ``__context__``).
    """
    if isinstance(exc, httpx.RequestError):
        try:
            copy = type(exc)(redact(str(exc)), request=_safe_request(exc))
        except TypeError:  # a subclass with another constructor
            pass
        else:
            return copy
    kind = type(exc)
    name = f"{kind.__module__}.{kind.__qualname__}"
    text = redact(str(exc))
    return ScrubbedCause(f"{name}: {text}" if text else name, name)

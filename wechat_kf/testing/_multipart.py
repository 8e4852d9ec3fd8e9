"""A small ``multipart/form-data`` parser for the fake's file uploads (the agent avatar)."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import collapse_rfc2231_value
from typing import Final

import attrs

__all__ = ["FormPart", "MultipartError", "parse_form_data"]

_CRLF: Final = b"\r\n"
_HEAD_END: Final = b"\r\n\r\n"


class MultipartError(ValueError):
    """The body is not well-formed ``multipart/form-data``."""


@attrs.frozen(kw_only=True)
class FormPart:
    """One part of a form: its field ``name``, ``filename`` and ``content_type`` if given."""

    name: str | None
    filename: str | None
    content_type: str | None
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")


def _headers(raw: bytes) -> EmailMessage:
    message = BytesHeaderParser(policy=email.policy.HTTP).parsebytes(raw + _HEAD_END)
    assert isinstance(message, EmailMessage)
    return message


def _param(message: EmailMessage, name: str) -> str | None:
    value = message.get_param(name, header="content-disposition")
    return None if value is None else collapse_rfc2231_value(value)


def parse_form_data(content_type: str, body: bytes) -> list[FormPart]:
    """The parts of a ``multipart/form-data`` body sent with this ``Content-Type``.

    Raises:
        MultipartError: not multipart/form-data, no boundary, or a malformed body.
    """
    header = _headers(b"Content-Type: " + content_type.encode("latin-1"))
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or boundary is None:
        raise MultipartError("not multipart/form-data with a boundary")
    chunks = body.split(b"--" + collapse_rfc2231_value(boundary).encode("latin-1"))
    if len(chunks) < 2 or not chunks[-1].startswith(b"--"):
        raise MultipartError("no closing boundary")
    parts = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(_CRLF) or not chunk.endswith(_CRLF):
            raise MultipartError("a boundary is not on a line of its own")
        content = chunk[len(_CRLF) : -len(_CRLF)]
        if content.startswith(_CRLF):  # a part with no headers at all
            raw_head, data = b"", content[len(_CRLF) :]
        else:
            raw_head, found, data = content.partition(_HEAD_END)
            if not found:
                raise MultipartError("a part's headers do not end")
        head = _headers(raw_head)
        parts.append(
            FormPart(
                name=_param(head, "name"),
                filename=_param(head, "filename"),
                content_type=head.get("content-type"),
                data=data,
            )
        )
    return parts

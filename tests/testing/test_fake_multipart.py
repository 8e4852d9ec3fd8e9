"""The fake's multipart/form-data parser (the avatar upload's body)."""

from __future__ import annotations

import httpx
import pytest

from wechat_kf.testing._multipart import FormPart, MultipartError, parse_form_data

BINARY = bytes(range(256)) + b"\r\n--\r\n\r\n" + bytes(range(256))


def _encoded(**kwargs: object) -> tuple[str, bytes]:
    request = httpx.Request("POST", "https://example.com/", **kwargs)  # type: ignore[arg-type]
    return request.headers["content-type"], request.read()


def test_parses_what_httpx_sends() -> None:
    content_type, body = _encoded(
        files={"media": ("头像.jpg", BINARY, "image/jpeg")}, data={"note": "hi"}
    )
    assert parse_form_data(content_type, body) == [
        FormPart(name="note", filename=None, content_type=None, data=b"hi"),
        FormPart(name="media", filename="头像.jpg", content_type="image/jpeg", data=BINARY),
    ]


def test_part_without_headers_and_quoted_boundary() -> None:
    body = (
        b"preamble\r\n--a b\r\n\r\nraw\r\n"
        b'--a b\r\nContent-Disposition: form-data; name="x"\r\n\r\n\r\n--a b--\r\n'
    )
    assert parse_form_data('multipart/form-data; boundary="a b"', body) == [
        FormPart(name=None, filename=None, content_type=None, data=b"raw"),
        FormPart(name="x", filename=None, content_type=None, data=b""),
    ]


def test_rfc2231_filename() -> None:
    body = (
        b"--b\r\nContent-Disposition: form-data; name=\"media\"; filename*=UTF-8''%E5%9B%BE.png"
        b"\r\n\r\nPNG\r\n--b--"
    )
    [part] = parse_form_data("multipart/form-data; boundary=b", body)
    assert (part.name, part.filename) == ("media", "图.png")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/json", b"{}", id="not-multipart"),
        pytest.param("multipart/form-data", b"--b\r\n\r\nx\r\n--b--", id="no-boundary"),
        pytest.param("multipart/form-data; boundary=b", b"--b\r\n\r\nx\r\n", id="unclosed"),
        pytest.param("multipart/form-data; boundary=b", b"--b\r\nA: 1\r\nx\r\n--b--", id="head"),
        pytest.param("multipart/form-data; boundary=b", b"--bx\r\n\r\nx\r\n--b--", id="glued"),
        pytest.param("multipart/form-data; boundary=b", b"", id="empty"),
    ],
)
def test_malformed_bodies_raise(content_type: str, body: bytes) -> None:
    with pytest.raises(MultipartError):
        parse_form_data(content_type, body)

"""Property tests: whatever bytes come back, only the SDK's typed errors come out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wechat_kf import MalformedResponseError
from wechat_kf._converter import structure
from wechat_kf._pipeline import decode_body, errcode_of
from wechat_kf.kf import _KfList, _KfOnlineList
from wechat_kf.records import RecordPage
from wechat_kf.session import KfSession, WaitingSessions, _SessionList

T = TypeVar("T")

MODELS = [_KfList, _KfOnlineList, KfSession, _SessionList, WaitingSessions, RecordPage]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["0", " -1 ", "40001", "4e1", "", "1" * 31, "１"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "kf_list",
                    "kf_account",
                    "kf_id",
                    "recordlist",
                    "time",
                    "opercode",
                    "openid",
                    "count",
                    "waitcaselist",
                    "createtime",
                    "errcode",
                    "number",
                    "msgid",
                    "status",
                    "kf_online_list",
                    "sessionlist",
                    "latest_time",
                    "invite_status",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


#: Each model's list, as WeChat names it and as the model holds it.
LISTS = {
    _KfList: ("kf_list", "kf_list"),
    _KfOnlineList: ("kf_online_list", "kf_online_list"),
    _SessionList: ("sessionlist", "sessionlist"),
    WaitingSessions: ("waitcaselist", "cases"),
    RecordPage: ("recordlist", "records"),
}
_NOT_JSON = object()


def _outcome(call: Callable[..., T], *args: Any) -> tuple[T | None, MalformedResponseError | None]:
    try:
        return call(*args), None
    except MalformedResponseError as exc:
        return None, exc


def _decode(body: bytes) -> None:
    """Decode ``body`` into every model: a faithful result, or a MalformedResponseError."""
    try:
        expected = json.loads(body)
    except (ValueError, RecursionError):
        expected = _NOT_JSON
    payload, error = _outcome(decode_body, body)
    if error is not None:
        assert not isinstance(expected, dict), "a JSON object was refused"
        reason = (
            "response is not JSON" if expected is _NOT_JSON else "response is not a JSON object"
        )
        excerpt = error.body_excerpt
        assert str(error) == (f"{reason}: {excerpt!r}" if excerpt else reason)
        assert excerpt == body[:200].decode("utf-8", "replace") or b"access_token" in body
        return
    assert isinstance(expected, dict), "decoded something that is not a JSON object"
    assert payload == expected
    _check_errcode(expected)
    for model in MODELS:
        _check_structure(expected, model)


def _check_errcode(payload: dict[str, Any]) -> None:
    raw = payload.get("errcode", 0)
    code, error = _outcome(errcode_of, payload)
    if isinstance(raw, int) and not isinstance(raw, bool):
        assert (code, error) == (raw, None)
    elif isinstance(raw, str) and re.fullmatch(r"-?[0-9]{1,30}", raw.strip()):
        assert (code, error) == (int(raw), None)
    else:  # a float, a bool, a list, null, a word: not an errcode
        assert error is not None, f"errcode {raw!r} read as {code!r}"
        assert str(error) == f"errcode is not an integer: {type(raw).__name__}"


def _check_structure(payload: dict[str, Any], model: type) -> None:
    result, error = _outcome(structure, payload, model)
    if error is not None:
        assert str(error).startswith(f"response does not match {model.__name__}: ")
        assert isinstance(error.__cause__, Exception)
        return
    assert type(result) is model
    if model in LISTS:
        wire, attribute = LISTS[model]
        items = payload.get(wire)
        held = getattr(result, attribute)
        # Nothing dropped, nothing invented.
        assert len(held) == (len(items) if isinstance(items, list) else 0), (wire, items, held)
    if model is KfSession:
        account = payload.get("kf_account", "")
        assert result.kf_account == (str(account) if isinstance(account, int) else account)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(body: bytes) -> None:
    _decode(body)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_shapes(value: Any) -> None:
    _decode(json.dumps(value).encode())


@settings(max_examples=100, deadline=None)
@given(json_values, st.integers(min_value=1, max_value=40))
def test_truncated_json(value: Any, cut: int) -> None:
    _decode(json.dumps(value).encode()[:-cut])


def test_hostile_bodies() -> None:
    for body in [
        b"<html><body>502 Bad Gateway</body></html>",
        b"[" * 100_000,  # recursion
        b'{"count": ' + b"9" * 5000 + b"}",  # beyond int parsing limits
        b'{"errcode": 1e999}',
        b"\xff\xfe\x00",
        b'{"kf_list": [{"kf_account": "a@b", "kf_id": {"x": 1}}]}',
    ]:
        _decode(body)


def test_huge_numbers_are_malformed_not_crashes() -> None:
    body = b'{"count": ' + b"9" * 5000 + b"}"  # beyond Python's int parsing limit
    with pytest.raises(MalformedResponseError) as info:
        decode_body(body)
    assert str(info.value).startswith('response is not JSON: \'{"count": 999')
    assert info.value.body_excerpt == body[:200].decode()
    assert "Exceeds the limit (4300 digits)" in str(info.value.__cause__)

"""Property tests: whatever bytes come back, only the SDK's typed errors come out."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wechat_kf import MalformedResponseError, WeChatError
from wechat_kf._converter import structure
from wechat_kf._pipeline import decode_body, errcode_of
from wechat_kf.kf import _KfList, _KfOnlineList
from wechat_kf.records import RecordPage
from wechat_kf.session import KfSession, WaitingSessions, _SessionList

MODELS = [_KfList, _KfOnlineList, KfSession, _SessionList, WaitingSessions, RecordPage]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
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


def _decode(body: bytes) -> None:
    for model in MODELS:
        try:
            payload = decode_body(body)
            errcode_of(payload)
            structure(payload, model)
        except WeChatError:
            pass


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
    with contextlib.suppress(MalformedResponseError):
        decode_body(b'{"count": ' + b"9" * 5000 + b"}")

"""Signatures: known answers, constant-time comparison, the URL check, the freshness window."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.callback.callback_fakes import (
    APPID,
    NOW,
    OFFICIAL_PUSH,
    OFFICIAL_PUSH_2,
    TOKEN,
    FakeWeChat,
)
from wechat_kf import WeChatError
from wechat_kf.callback import (
    CallbackHandler,
    MalformedCallbackError,
    SignatureError,
    StaleTimestampError,
)
from wechat_kf.callback._signature import compute_signature, signature_matches


def test_plain_signature_known_answer() -> None:
    # sorted(["pamtest", "1409304348", "xxxxxx"]) joined = "1409304348pamtestxxxxxx";
    # expected value from `printf %s 1409304348pamtestxxxxxx | sha1sum` (coreutils and openssl).
    assert (
        compute_signature("pamtest", "1409304348", "xxxxxx")
        == "76480565cbe296026c53aaacd1ad523a1ddba24f"
    )


@pytest.mark.parametrize("sample", [OFFICIAL_PUSH, OFFICIAL_PUSH_2], ids=["python", "csharp"])
def test_msg_signature_matches_the_official_samples(sample: dict[str, str]) -> None:
    signature = compute_signature(
        sample["token"], sample["timestamp"], sample["nonce"], sample["encrypt"]
    )
    assert signature == sample["msg_signature"]


@given(st.lists(st.text(), min_size=3, max_size=4), st.randoms())
def test_signature_ignores_the_order_of_its_parts(parts: list[str], rnd: object) -> None:
    shuffled = list(parts)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert compute_signature(*parts) == compute_signature(*shuffled)


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    query = FakeWeChat().url_check()
    assert handler.verify_url(query) == query["echostr"]
    assert calls == [(query["signature"], query["signature"])]


@pytest.mark.parametrize("received", ["", "é" * 40, "\ud800", "A" * 40, "0" * 400])
def test_any_received_text_compares_without_raising(received: str) -> None:
    assert signature_matches("0" * 40, received) is False


class TestURLCheck:
    handler = CallbackHandler(token=TOKEN, appid=APPID)

    def test_answers_echostr(self) -> None:
        query = FakeWeChat().url_check("4075181314397890557")
        assert self.handler.verify_url(query) == "4075181314397890557"

    def test_wrong_token_is_refused(self) -> None:
        query = FakeWeChat(token="anotherToken").url_check()
        with pytest.raises(SignatureError, match="signature does not match"):
            self.handler.verify_url(query)

    def test_uppercase_hex_is_refused(self) -> None:
        query = FakeWeChat().url_check()
        query["signature"] = query["signature"].upper()
        with pytest.raises(SignatureError):
            self.handler.verify_url(query)

    @pytest.mark.parametrize("name", ["signature", "timestamp", "nonce"])
    def test_missing_parameter_is_a_signature_error(self, name: str) -> None:
        query = FakeWeChat().url_check()
        del query[name]
        with pytest.raises(SignatureError, match=f"no '{name}' query parameter"):
            self.handler.verify_url(query)

    def test_tampered_timestamp_is_refused(self) -> None:
        query = FakeWeChat().url_check()
        query["timestamp"] = str(int(query["timestamp"]) + 1)
        with pytest.raises(SignatureError):
            self.handler.verify_url(query)

    def test_missing_echostr_is_malformed(self) -> None:
        query = FakeWeChat().url_check()
        del query["echostr"]
        with pytest.raises(MalformedCallbackError, match="echostr"):
            self.handler.verify_url(query)

    def test_msg_signature_does_not_replace_signature(self) -> None:
        # Safe-mode pushes carry both; the URL check is authenticated by `signature` only.
        query = FakeWeChat().url_check()
        query["msg_signature"] = query.pop("signature")
        with pytest.raises(SignatureError, match="no 'signature'"):
            self.handler.verify_url(query)


class TestFreshnessWindow:
    def handler(self, window: float | None) -> CallbackHandler:
        return CallbackHandler(token=TOKEN, appid=APPID, timestamp_window=window, clock=lambda: NOW)

    @pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
    def test_inside_the_window_passes(self, offset: int) -> None:
        query = FakeWeChat(timestamp=str(NOW + offset)).url_check()
        assert self.handler(300).verify_url(query) == query["echostr"]

    @pytest.mark.parametrize("offset", [-301, 301, -86400])
    def test_outside_the_window_is_stale(self, offset: int) -> None:
        query = FakeWeChat(timestamp=str(NOW + offset)).url_check()
        with pytest.raises(StaleTimestampError) as info:
            self.handler(300).verify_url(query)
        assert info.value.timestamp == NOW + offset
        assert info.value.now == NOW
        assert info.value.window == 300
        assert f"is {abs(offset)} s away" in str(info.value)
        assert "the window is 300 s" in str(info.value)

    def test_signature_is_checked_before_freshness(self) -> None:
        query = FakeWeChat(token="anotherToken", timestamp="1").url_check()
        with pytest.raises(SignatureError):
            self.handler(300).verify_url(query)

    @pytest.mark.parametrize("timestamp", ["", "abc", "1.5", "-5", "١٢٣"])
    def test_signed_but_not_an_integer_is_stale(self, timestamp: str) -> None:
        query = FakeWeChat(timestamp=timestamp).url_check()
        with pytest.raises(StaleTimestampError, match="not an integer") as info:
            self.handler(300).verify_url(query)
        assert info.value.timestamp is None

    def test_off_by_default(self) -> None:
        query = FakeWeChat(timestamp="1").url_check()
        assert self.handler(None).verify_url(query) == query["echostr"]

    def test_applies_to_pushes_too(self) -> None:
        from tests.callback.callback_fakes import text_push

        query, body = FakeWeChat(timestamp=str(NOW - 1000)).push(text_push())
        with pytest.raises(StaleTimestampError):
            self.handler(300).parse(query, body)


def test_errors_never_carry_the_expected_signature_or_token() -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    query = FakeWeChat().url_check()
    expected = query["signature"]
    query["signature"] = "0" * 40
    with pytest.raises(WeChatError) as info:
        handler.verify_url(query)
    for text in (str(info.value), repr(info.value)):
        assert expected not in text
        assert TOKEN not in text

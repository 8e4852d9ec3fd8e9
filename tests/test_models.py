"""Models and message classes: validation limits, converter round trips, drifted wire shapes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wechat_kf import (
    AgentSession,
    Article,
    Image,
    InviteStatus,
    KfAccount,
    KfOnlineAccount,
    KfSession,
    MenuItem,
    MiniProgramPage,
    MpNews,
    MpNewsArticle,
    MsgMenu,
    Music,
    News,
    OnlineStatus,
    OperCode,
    RawMessage,
    Record,
    RecordPage,
    Text,
    ValidationError,
    Video,
    Voice,
    WaitCase,
    WxCard,
)
from wechat_kf._converter import converter, structure, unstructure
from wechat_kf._validation import kf_account, nickname, openid

# ---------------------------------------------------------------- validation tables


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("test1@test", True),
        ("a@b", True),
        ("A_z9_______@gh_123", False),  # prefix of 11
        ("Az9_______@gh_123", True),  # prefix of 10
        ("kf@" + "x" * 30, True),
        ("kf@" + "x" * 31, False),
        ("kf-1@test", False),  # '-' not allowed in the prefix
        ("客服@test", False),
        ("@test", False),
        ("kf@", False),
        ("kf@a@b", False),
        ("kf@te st", False),
        ("kftest", False),
        ("", False),
        (None, False),
    ],
)
def test_kf_account_format(value: Any, ok: bool) -> None:
    if ok:
        assert kf_account(value) == value
    else:
        with pytest.raises(ValidationError) as info:
            kf_account(value)
        assert info.value.field == "kf_account"
        assert "1-10" in info.value.limit
        assert "30" in info.value.limit


@pytest.mark.parametrize(
    ("value", "ok"),
    [("a", True), ("客" * 16, True), ("x" * 16, True), ("客" * 17, False), ("", False), (3, False)],
)
def test_nickname_limit(value: Any, ok: bool) -> None:
    if ok:
        assert nickname(value) == value
    else:
        with pytest.raises(ValidationError, match="1-16 characters") as info:
            nickname(value)
        assert info.value.field == "nickname"
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", ["", " ", "a b", "x" * 129, None, 42])
def test_openid_refused(value: Any) -> None:
    with pytest.raises(ValidationError, match="openid"):
        openid(value)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Text(content=""), "Text.content"),
        (lambda: Text(content="   "), "Text.content"),
        (lambda: Image(media_id=""), "Image.media_id"),
        (lambda: Voice(media_id=""), "Voice.media_id"),
        (lambda: Video(media_id="m", thumb_media_id=""), "Video.thumb_media_id"),
        (lambda: Video(media_id="m", thumb_media_id=" "), "Video.thumb_media_id"),
        (lambda: Video(media_id=""), "Video.media_id"),
        (lambda: Video(media_id="m", thumb_media_id="t", title=3), "Video.title"),
        (lambda: Music(musicurl="u", hqmusicurl="", thumb_media_id="t"), "Music.hqmusicurl"),
        (lambda: News(articles=[]), "News.articles"),
        (lambda: News(articles=[Article(title="a"), Article(title="b")]), "News.articles"),
        (lambda: Article(title=""), "Article.title"),
        (lambda: MpNews(media_id=""), "MpNews.media_id"),
        (lambda: MpNewsArticle(article_id=""), "MpNewsArticle.article_id"),
        (lambda: MsgMenu(items=[]), "MsgMenu.items"),
        (lambda: MenuItem(id="", content="x"), "MenuItem.id"),
        (lambda: MenuItem(id="1", content=""), "MenuItem.content"),
        (lambda: WxCard(card_id=""), "WxCard.card_id"),
        (lambda: Text(content="tab\tand\nnewline ok, but \x0b not"), "Text.content"),
        (lambda: Text(content="\x00"), "Text.content"),
        (lambda: Text(content="lone \ud800 surrogate"), "Text.content"),
        (lambda: Video(media_id="m", thumb_media_id="t", title="\x1b[31m"), "Video.title"),
        (lambda: RawMessage(type="x", payload={"a": ["ok", "\x07"]}), "RawMessage.payload.a[1]"),
        (lambda: News(articles=Article(title="a")), "News.articles"),
        (lambda: News(articles=[{"title": "a"}]), "News.articles"),
        (lambda: MsgMenu(items=None), "MsgMenu.items"),
        (
            lambda: MiniProgramPage(title="t", appid="", pagepath="p", thumb_media_id="x"),
            "MiniProgramPage.appid",
        ),
    ],
)
def test_message_limits(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_messages_are_frozen_and_keyword_only() -> None:
    text = Text(content="hi")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        text.content = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Text("hi")  # type: ignore[misc]


# ---------------------------------------------------------------- drifted real-world shapes


def test_kf_account_drift() -> None:
    wire = {
        "kf_account": "test1@test",
        "kf_nick": "ntest1",
        "kf_id": 1001,  # int here, "1001" elsewhere
        "kf_headimgurl": "http://mmbiz.qpic.cn/x/0",
        "invite_wx": "kfwx1",
        "invite_expire_time": "1500000000",  # string here, int elsewhere
        "invite_status": "some_new_status",  # unknown values survive
        "brand_new_field": {"ignored": True},
    }
    account = structure(wire, KfAccount)
    assert account.kf_id == "1001"
    assert account.invite_expire_time == datetime.fromtimestamp(1500000000, timezone.utc)
    assert account.invite_status == "some_new_status"
    assert account.invite_status is not None
    assert account.invite_status.name == "UNKNOWN"
    assert structure({**wire, "kf_id": "1001"}, KfAccount) == account


def test_online_status_drift() -> None:
    older = structure(
        {"kf_account": "a@b", "status": "3", "kf_id": "1", "accepted_case": "2"}, KfOnlineAccount
    )
    assert older.status is OnlineStatus.WEB_AND_MOBILE
    assert older.accepted_case == 2
    newer = structure({"kf_account": "a@b", "status": 7, "kf_id": 1}, KfOnlineAccount)
    assert newer.status == 7


def test_session_zero_time_means_none() -> None:
    assert structure({"kf_account": "", "createtime": 0}, KfSession).createtime is None
    assert structure({}, KfSession) == KfSession()


def test_record_with_string_fields() -> None:
    record = structure(
        {"openid": "o", "opercode": "2003", "text": "hi", "time": "1400563731", "worker": "w"},
        Record,
    )
    assert record.opercode is OperCode.AGENT_RECEIVED_MESSAGE
    assert record.time == datetime.fromtimestamp(1400563731, timezone.utc)


# ---------------------------------------------------------------- round trips

aware = st.integers(min_value=1, max_value=4_000_000_000).map(
    lambda s: datetime.fromtimestamp(s, timezone.utc)
)
text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(
    str.strip
)
optional_text = st.none() | text

MODELS = {
    KfAccount: st.builds(
        KfAccount,
        kf_account=text,
        kf_nick=st.text(max_size=10),
        kf_id=st.integers(0, 10**6).map(str),
        kf_wx=optional_text,
        invite_expire_time=st.none() | aware,
        invite_status=st.none() | st.sampled_from(InviteStatus),
    ),
    KfOnlineAccount: st.builds(
        KfOnlineAccount,
        kf_account=text,
        status=st.sampled_from(OnlineStatus),
        accepted_case=st.integers(0, 100),
        auto_accept=st.none() | st.integers(0, 100),
    ),
    KfSession: st.builds(KfSession, kf_account=st.text(max_size=10), createtime=st.none() | aware),
    AgentSession: st.builds(AgentSession, openid=text, createtime=aware),
    WaitCase: st.builds(WaitCase, openid=text, latest_time=aware, kf_account=optional_text),
    Record: st.builds(
        Record, openid=text, opercode=st.sampled_from(OperCode), text=st.text(), time=aware
    ),
    RecordPage: st.builds(
        RecordPage,
        records=st.lists(
            st.builds(Record, openid=text, opercode=st.sampled_from(OperCode), time=aware),
            max_size=3,
        ),
        number=st.integers(0, 10_000),
        msgid=st.integers(0, 2**40),
    ),
}


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_models_round_trip(model: type, data: st.DataObject) -> None:
    value = data.draw(MODELS[model])
    assert structure(unstructure(value), model) == value


MESSAGES = st.one_of(
    st.builds(Text, content=text),
    st.builds(Image, media_id=text),
    st.builds(Voice, media_id=text),
    st.builds(Video, media_id=text, thumb_media_id=optional_text, title=optional_text),
    st.builds(Music, musicurl=text, hqmusicurl=text, thumb_media_id=text, title=optional_text),
    st.builds(News, articles=st.tuples(st.builds(Article, title=text, url=optional_text))),
    st.builds(MpNews, media_id=text),
    st.builds(MpNewsArticle, article_id=text),
    st.builds(
        MsgMenu,
        items=st.lists(st.builds(MenuItem, id=text, content=text), min_size=1, max_size=4),
        head_content=optional_text,
    ),
    st.builds(WxCard, card_id=text),
    st.builds(MiniProgramPage, title=text, appid=text, pagepath=text, thumb_media_id=text),
)


@settings(max_examples=200, deadline=None)
@given(MESSAGES)
def test_messages_round_trip_without_nulls(message: Any) -> None:
    wire = unstructure(message)
    assert None not in wire.values()
    if isinstance(message, MsgMenu):
        assert "list" in wire
        assert "items" not in wire
    assert (
        converter.structure(
            {("items" if k == "list" else k): v for k, v in wire.items()}, type(message)
        )
        == message
    )


def _drift(value: Any, data: st.DataObject) -> Any:
    """What WeChat really sends: ints as strings (and numeric strings as ints), extra keys."""
    if isinstance(value, dict):
        drifted = {k: _drift(v, data) for k, v in value.items()}
        if data.draw(st.booleans()):
            drifted["added_by_wechat_tomorrow"] = data.draw(st.integers() | st.text(max_size=5))
        return drifted
    if isinstance(value, list):
        return [_drift(v, data) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and data.draw(st.booleans()):
        return str(value)
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) < 10
        and data.draw(st.booleans())
    ):
        return int(value)
    return value


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_models_survive_drifted_shapes(model: type, data: st.DataObject) -> None:
    value = data.draw(MODELS[model])
    drifted = _drift(unstructure(value), data)
    result = structure(drifted, model)
    assert type(result) is model
    if model is RecordPage:
        assert len(result.records) == len(value.records)


def test_encoder_refuses_lone_surrogates_with_a_typed_error() -> None:
    from wechat_kf._pipeline import encode_json

    with pytest.raises(ValidationError, match="valid Unicode"):
        encode_json({"touser": "o", "text": {"content": "\ud83d"}})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_any_text_either_validates_or_encodes_without_escapes(value: str) -> None:
    from wechat_kf._pipeline import encode_json

    try:
        message = Text(content=value)
    except ValidationError:
        return
    assert b"\\u" not in encode_json(unstructure(message))


def test_list_fields_take_any_iterable_and_hold_a_tuple() -> None:
    news = News(articles=(article for article in [Article(title="a")]))
    assert news.articles == (Article(title="a"),)
    menu = MsgMenu(items=iter([MenuItem(id="1", content="A")]), tail_content="t")
    assert menu.items == (MenuItem(id="1", content="A"),)
    changed = attrs.evolve(menu, items=[MenuItem(id="2", content="B")])
    assert (changed.items, changed.tail_content) == ((MenuItem(id="2", content="B"),), "t")
    with pytest.raises(ValidationError, match=r"MsgMenu\.items"):
        attrs.evolve(menu, items=[])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        menu.items = ()  # type: ignore[misc]

"""``wechat-kf send``: every message type from options or a JSON file, on the wire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import SEND_PATH, Invoker
from wechat_kf.testing import FakeWeChat


def last_body(fake: FakeWeChat) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests_to(SEND_PATH)[-1].json()
    return body


@pytest.mark.parametrize(
    ("options", "msgtype", "payload"),
    [
        (["--text", "您好 <a href=\"https://x.cn\">链接</a>"], "text",
         {"content": "您好 <a href=\"https://x.cn\">链接</a>"}),
        (["--image", "MEDIA"], "image", {"media_id": "MEDIA"}),
        (["--voice", "MEDIA"], "voice", {"media_id": "MEDIA"}),
        (["--video", "MEDIA", "--thumb-media-id", "THUMB", "--title", "T"], "video",
         {"media_id": "MEDIA", "thumb_media_id": "THUMB", "title": "T"}),
        (["--video", "MEDIA", "--title", "T", "--description", "D"], "video",
         {"media_id": "MEDIA", "title": "T", "description": "D"}),
        (["--music", "https://m/a.mp3", "--thumb-media-id", "THUMB"], "music",
         {"musicurl": "https://m/a.mp3", "hqmusicurl": "https://m/a.mp3",
          "thumb_media_id": "THUMB"}),
        (["--news", "https://x.cn/a", "--title", "Happy Day", "--picurl", "https://x.cn/a.jpg"],
         "news", {"articles": [{"title": "Happy Day", "url": "https://x.cn/a",
                                "picurl": "https://x.cn/a.jpg"}]}),
        (["--mpnews", "MEDIA"], "mpnews", {"media_id": "MEDIA"}),
        (["--mpnewsarticle", "ARTICLE"], "mpnewsarticle", {"article_id": "ARTICLE"}),
        (["--wxcard", "CARD"], "wxcard", {"card_id": "CARD"}),
        (["--menu-head", "满意吗？", "--menu-item", "101=满意", "--menu-item", "102=不满意",
          "--menu-tail", "谢谢"], "msgmenu",
         {"head_content": "满意吗？", "list": [{"id": "101", "content": "满意"},
                                              {"id": "102", "content": "不满意"}],
          "tail_content": "谢谢"}),
        (["--miniprogram", "订单, 详情,wxapp,pages/order?id=1,THUMB"], "miniprogrampage",
         {"title": "订单, 详情", "appid": "wxapp", "pagepath": "pages/order?id=1",
          "thumb_media_id": "THUMB"}),
    ],
)  # fmt: skip
def test_each_message_type(
    wechat_kf: Invoker, fake: FakeWeChat, options: list[str], msgtype: str, payload: Any
) -> None:
    fake.user_says("o_1")
    for media_id in ("MEDIA", "THUMB"):  # materials the fake holds (else 40007)
        fake.add_media(media_id=media_id, permanent=True)
    result = wechat_kf("send", "o_1", *options)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"✓ {msgtype} sent to o_1\n"
    assert last_body(fake) == {"touser": "o_1", "msgtype": msgtype, msgtype: payload}
    assert fake.sent_to("o_1")


def test_as_agent_and_ai_generated_with_json_output(wechat_kf: Invoker, fake: FakeWeChat) -> None:
    fake.add_agent("a@gh", online=True)
    fake.user_says("o_1")
    data = wechat_kf.json("send", "o_1", "--text", "hi", "--kf-account", "a@gh", "--ai-generated")
    assert data == {"ok": True, "openid": "o_1", "msgtype": "text"}
    body = last_body(fake)
    assert body["customservice"] == {"kf_account": "a@gh"}
    assert body["aimsgcontext"] == {"is_ai_msg": 1}


def test_json_file(wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path) -> None:
    fake.user_says("o_1")
    message = {
        "touser": "ignored",
        "msgtype": "msgmenu",
        "msgmenu": {"head_content": "选一个", "list": [{"id": "1", "content": "好"}]},
        "customservice": {"kf_account": "a@gh"},
        "aimsgcontext": {"is_ai_msg": 1},
    }
    path = tmp_path / "menu.json"
    path.write_text(json.dumps(message, ensure_ascii=False), encoding="utf-8")
    fake.add_agent("a@gh", online=True)
    result = wechat_kf("send", "o_1", "--json-file", str(path))
    assert result.exit_code == 0, result.output
    assert last_body(fake) == {**message, "touser": "o_1"}


def test_json_file_unknown_type_sent_verbatim_and_stdin(
    wechat_kf: Invoker, fake: FakeWeChat
) -> None:
    fake.user_says("o_1")
    message = {"msgtype": "newtype", "newtype": {"x": [1, 2], "y": "新"}}
    result = wechat_kf("send", "o_1", "--json-file", "-", input=json.dumps(message))
    # The fake does not know the type (WeChat would say which): the body went out verbatim.
    assert json.loads(fake.requests_to(SEND_PATH)[-1].body) == {"touser": "o_1", **message}
    assert result.exit_code == 1


def test_json_file_news(wechat_kf: Invoker, fake: FakeWeChat) -> None:
    fake.user_says("o_1")
    message = {"msgtype": "news", "news": {"articles": [{"title": "T", "url": "https://a"}]}}
    result = wechat_kf("send", "o_1", "--json-file", "-", input=json.dumps(message))
    assert result.exit_code == 0, result.output
    assert last_body(fake) == {"touser": "o_1", **message}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1]", 'expected an object {"msgtype": ..., ...}'),
        ('{"msgtype": "text"}', '"text" must be an object with the message'),
        ('{"msgtype": "text", "text": {"content": "x", "bold": true}}',
         '"text" has no field bold (fields: content)'),
        ('{"msgtype": "image", "image": {}}', '"image" needs media_id'),
        ('{"msgtype": "msgmenu", "msgmenu": {"list": "x"}}', '"msgmenu.list" must be a list'),
    ],
)  # fmt: skip
def test_bad_json_files_are_usage_errors(
    wechat_kf: Invoker, fake: FakeWeChat, document: str, message: str
) -> None:
    result = wechat_kf("send", "o_1", "--json-file", "-", input=document)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not fake.requests_to(SEND_PATH)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "say what to send: --text, --image"),
        (["--text", "a", "--image", "b"], "send one message type at a time (got --text, --image)"),
        (["--text", "a", "--title", "t"], "--title goes with --video, --music, --news, not --text"),
        (["--music", "m"], "--music needs --thumb-media-id"),
        (["--news", "https://a"], "--news needs --title"),
        (["--menu-item", "no-equals"], "--menu-item takes ID=CONTENT"),
        (["--miniprogram", "a,b"], "--miniprogram takes TITLE,APPID,PAGEPATH,THUMB_MEDIA_ID"),
    ],
)
def test_option_mistakes_are_usage_errors(
    wechat_kf: Invoker, fake: FakeWeChat, options: list[str], message: str
) -> None:
    result = wechat_kf("send", "o_1", *options)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not fake.requests


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["o_1", "--text", ""], "error: invalid Text.content: must be a non-empty string"),
        (["o 1", "--text", "hi"], "error: invalid openid: must be a non-empty openid"),
        (["o_1", "--text", "hi", "--kf-account", "bad"], "error: invalid kf_account: must be"),
        (["o_1", "--image", " "], "error: invalid Image.media_id: must be a non-empty string"),
    ],
)
def test_validation_errors_exit_2_before_any_request(
    wechat_kf: Invoker, fake: FakeWeChat, args: list[str], line: str
) -> None:
    result = wechat_kf("send", *args)
    assert result.exit_code == 2, result.output
    assert line in result.stderr
    assert "Traceback" not in result.output
    assert not fake.requests_to(SEND_PATH)


def test_quota_used_up_is_45047(wechat_kf: Invoker, fake: FakeWeChat) -> None:
    fake.user_says("o_1")
    for _ in range(5):
        assert wechat_kf("send", "o_1", "--text", "hi").exit_code == 0
    result = wechat_kf("send", "o_1", "--text", "hi")
    assert result.exit_code == 1
    assert "errcode 45047 (the messages allowed in this response window are used up)" in (
        result.stderr
    )

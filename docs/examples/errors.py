"""What goes wrong, and how each family of errors tells you what to do."""

import asyncio
import os

from wechat_kf import (
    AsyncWeChat,
    CustomerServiceError,
    ResponseWindowError,
    Text,
    TokenError,
    ValidationError,
    WeChatError,
)


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        # Bad input is refused before any request, naming the field and the limit
        try:
            Text(content="")
        except ValidationError as exc:  # also a ValueError
            print("ValidationError:", exc.field, "|", exc.limit)
        try:
            await wx.kf.add("no-at-sign", "Eve")
        except ValidationError as exc:
            print("ValidationError:", exc.field, "|", exc.limit)

        # WeChat refused: an APIError subclass by meaning, with WeChat's errcode and rid
        try:
            await wx.message.send("o_stranger", Text(content="您好"))
        except ResponseWindowError as exc:  # the user has not written within 48 hours
            print("ResponseWindowError:", exc.errcode, "rid given:", bool(exc.rid))
        try:
            await wx.session.create("carol@gh_demo", "o_customer_003")
        except CustomerServiceError as exc:  # 654xx: accounts, sessions, records
            print("CustomerServiceError:", exc.errcode)  # 65415: the agent is not online

    # No usable answer: every error says whether the request may have reached WeChat
    async with AsyncWeChat(
        "wx1234567890abcdef", "secret", base_url="http://127.0.0.1:9", max_retries=0
    ) as nowhere:
        try:
            await nowhere.message.send("o_customer_001", Text(content="您好"))
        except TokenError as exc:  # no access token to be had: the message was not sent
            print(type(exc).__name__, "caused by", type(exc.__cause__).__name__)
            print("may have reached WeChat:", exc.may_have_reached_wechat)
        except WeChatError as exc:  # every error of the SDK
            print("another error:", type(exc).__name__)


asyncio.run(main())
# Output:
# ValidationError: Text.content | must be a non-empty string
# ValidationError: kf_account | must be prefix@wechatid: a prefix of 1-10 letters, digits or underscores, '@', and the account's WeChat ID of at most 30 characters (got 'no-at-sign')
# ResponseWindowError: 45015 rid given: True
# CustomerServiceError: 65415
# TokenFetchError caused by ConnectFailedError
# may have reached WeChat: False

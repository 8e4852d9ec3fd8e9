"""Receive pushes with any web framework: the query and the raw body in, status and bytes out."""

import hashlib
import time
from xml.etree import ElementTree

from wechat_kf.callback import (
    CallbackError,
    CallbackHandler,
    TextMessage,
    TransferCustomerService,
)

TOKEN = "my_token"  # the Token of the admin console's server configuration
handler = CallbackHandler(token=TOKEN, appid="wx1234567890abcdef")


def handle_request(method: str, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
    try:
        if method == "GET":  # the admin console's URL check
            return 200, handler.verify_url(query).encode()
        incoming = handler.parse(query, body)  # verified, parsed, typed
    except CallbackError:  # bad signature, stale timestamp, hostile or malformed XML, ...
        return 403, b"forbidden"
    if isinstance(incoming, TextMessage):
        print("from", incoming.from_user, "says", incoming.content)
        return 200, handler.reply(incoming, TransferCustomerService())  # to a human agent
    return 200, handler.reply(incoming, None)  # b"success": acknowledged, no answer


# What WeChat does: sign the query with the same token, post the XML.
def signed(**query: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), "1320562132"
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce, **query}


PUSH = """<xml><ToUserName><![CDATA[gh_demo]]></ToUserName>
<FromUserName><![CDATA[o_customer_001]]></FromUserName><CreateTime>1700000000</CreateTime>
<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[人工客服]]></Content>
<MsgId>24170000000000001</MsgId></xml>""".encode()

print(handle_request("GET", signed(echostr="4105389345"), b""))
status, reply = handle_request("POST", signed(), PUSH)
print(status, ElementTree.fromstring(reply).findtext("MsgType"))
print(handle_request("POST", {**signed(), "signature": "0" * 40}, PUSH))
# Output:
# (200, b'4105389345')
# from o_customer_001 says 人工客服
# 200 transfer_customer_service
# (403, b'forbidden')

"""Safe mode: encrypted pushes, checked before decryption, and a key rotation.

Needs `pip install 'wechat_kf[callback]'` (cryptography).
"""

import base64
import hashlib
import os
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wechat_kf.callback import CallbackHandler, PlaintextPushError, TextMessage, TextReply

TOKEN, APPID = "my_token", "wx1234567890abcdef"
OLD_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"  # 43 characters, from the admin console
NEW_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

handler = CallbackHandler(
    token=TOKEN,
    appid=APPID,
    encoding_aes_key=NEW_KEY,
    previous_encoding_aes_key=OLD_KEY,  # while rotating: pushes open with either key
    timestamp_window=300,  # the default: refuse pushes signed 5 minutes from this server's clock
)


# What WeChat does in safe mode: encrypt the XML with the key, sign the ciphertext.
def wechat_push(xml: str, key: str) -> tuple[dict[str, str], bytes]:
    aes = base64.b64decode(key + "=")
    plain = os.urandom(16) + len(xml.encode()).to_bytes(4, "big") + xml.encode() + APPID.encode()
    pad = 32 - len(plain) % 32
    encryptor = Cipher(algorithms.AES(aes), modes.CBC(aes[:16])).encryptor()
    ciphertext = base64.b64encode(encryptor.update(plain + bytes([pad]) * pad)).decode()
    timestamp, nonce = str(int(time.time())), "1320562132"
    parts = sorted([TOKEN, timestamp, nonce, ciphertext])
    query = {
        "timestamp": timestamp,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": hashlib.sha1("".join(parts).encode()).hexdigest(),
    }
    return query, f"<xml><Encrypt><![CDATA[{ciphertext}]]></Encrypt></xml>".encode()


XML = (
    "<xml><ToUserName>gh_demo</ToUserName><FromUserName>o_customer_003</FromUserName>"
    "<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>我想退货</Content>"
    "<MsgId>3</MsgId></xml>"
)

for key in (OLD_KEY, NEW_KEY):  # WeChat switches keys some time after the console change
    query, body = wechat_push(XML, key)
    incoming = handler.parse(query, body)
    assert isinstance(incoming, TextMessage)
    print(incoming.content, incoming.encrypted, incoming.decrypted_with_previous_key)
    reply = handler.reply(incoming, TextReply(content="好的"))  # encrypted with the same key
    print(b"<Encrypt>" in reply, b"\xe5\xa5\xbd" not in reply)  # the text is not readable

try:  # a push without encrypt_type=aes: its signature covers the query, not the body
    handler.parse(
        {"signature": "x", "timestamp": str(int(time.time())), "nonce": "1"}, XML.encode()
    )
except PlaintextPushError as exc:
    print(type(exc).__name__, handler.accepts_plaintext)
# Output:
# 我想退货 True True
# True True
# 我想退货 True False
# True True
# PlaintextPushError False

"""Safe mode: WeChat's AES message encryption, exactly as documented.

* key: ``base64decode(EncodingAESKey + "=")``, 43 characters giving 32 bytes (AES-256);
* cipher: AES-256-CBC, the IV is the first 16 key bytes;
* plaintext: 16 random bytes + message length (4 bytes, big-endian) + message + appid;
* padding: PKCS#7 to a multiple of **32** bytes (pad values 1 to 32, not 1 to 16);
* the result travels base64-encoded in ``<Encrypt>``.

CBC carries no integrity check of its own: the caller verifies ``msg_signature`` (which covers the
ciphertext and needs the token) before anything here runs, so no padding oracle is exposed.

The cipher comes from ``cryptography``, imported on first use: the package imports without it and
plain mode works; :func:`require_cryptography` fails early with an install hint.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import threading
from typing import TYPE_CHECKING, Final

from wechat_kf._errors import ValidationError
from wechat_kf.callback._errors import AppIdMismatchError, DecryptError, MissingDependencyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, modes

__all__ = ["AESKey", "decrypt", "encrypt", "require_cryptography"]

_KEY_FORMAT: Final = re.compile(r"[A-Za-z0-9]{43}")
_BLOCK: Final = 32  # WeChat's PKCS#7 block, twice AES's
_RANDOM_SIZE: Final = 16
_LENGTH_SIZE: Final = 4


def require_cryptography() -> None:
    """Raise :class:`MissingDependencyError` (an ``ImportError``) without ``cryptography``."""
    try:
        import cryptography.hazmat.primitives.ciphers  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("cryptography", "safe mode (encoding_aes_key)") from exc


class AESKey:
    """A parsed EncodingAESKey. ``repr`` and ``str`` never show the key.

    Its ciphers are built once, on first use, and reused. Encrypting gets a fresh CBC context
    per message. Decrypting, the hot path of every push, reuses one AES block decryptor
    (ECB, which keeps no state between calls) and chains the blocks itself, as CBC defines
    it: plaintext block i = D(ciphertext block i) XOR ciphertext block i-1 (the IV for the
    first). A lock keeps the shared decryptor to one thread at a time.
    """

    __slots__ = ("_blocks", "_cipher", "_key", "_lock")

    def __init__(self, encoding_aes_key: str, *, field: str = "encoding_aes_key") -> None:
        if not isinstance(encoding_aes_key, str) or not _KEY_FORMAT.fullmatch(encoding_aes_key):
            # The value is a secret: the message names the rule, never the value.
            raise ValidationError(
                field, "must be the 43 characters (a-z, A-Z, 0-9) set in the WeChat admin console"
            )
        self._key = base64.b64decode(encoding_aes_key + "=")
        self._cipher: Cipher[modes.CBC] | None = None
        self._blocks: CipherContext | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "AESKey(<hidden>)"

    def _cbc(self) -> Cipher[modes.CBC]:
        cipher = self._cipher  # pragma: no mutate (a cache: a new cipher works the same)
        if cipher is None:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

            cipher = self._cipher = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))
        return cipher

    def encrypt_blocks(self, data: bytes) -> bytes:
        """AES-256-CBC encrypt ``data`` (already padded), IV = first 16 key bytes."""
        encryptor = self._cbc().encryptor()
        return encryptor.update(data) + encryptor.finalize()

    def decrypt_blocks(self, data: bytes) -> bytes:
        """AES-256-CBC decrypt ``data`` (whole blocks), IV = first 16 key bytes."""
        if not data:
            return b""
        blocks = self._blocks  # pragma: no mutate (a cache: a new decryptor works the same)
        if blocks is None:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

            blocks = self._blocks = Cipher(algorithms.AES(self._key), modes.ECB()).decryptor()
        with self._lock:
            decrypted = blocks.update(data)
        previous = self._key[:16] + data[:-16]  # the IV, then each ciphertext block
        # "big", the byte order, is the default since Python 3.11 (3.10 needs it): equivalent
        # mutants, not mutated.
        chained = int.from_bytes(decrypted, "big")  # pragma: no mutate
        chained ^= int.from_bytes(previous, "big")  # pragma: no mutate
        return chained.to_bytes(len(data), "big")  # pragma: no mutate


def encrypt(key: AESKey, message: bytes, *, appid: str, random_prefix: bytes) -> str:
    """Encrypt ``message`` for ``appid``; return the base64 text for ``<Encrypt>``.

    ``random_prefix`` is the 16 random bytes the scheme starts with (``os.urandom(16)``; fixed
    only in known-answer tests).
    """
    if len(random_prefix) != _RANDOM_SIZE:
        raise ValueError(f"random_prefix must be {_RANDOM_SIZE} bytes")
    size = len(message).to_bytes(_LENGTH_SIZE, "big")  # pragma: no mutate (the default order)
    plain = random_prefix + size + message
    plain += appid.encode()
    pad = _BLOCK - len(plain) % _BLOCK
    plain += bytes((pad,)) * pad
    return base64.b64encode(key.encrypt_blocks(plain)).decode()


def decrypt(key: AESKey, encrypted: str, *, appid: str) -> bytes:
    """Decrypt the ``<Encrypt>`` text; check the trailing appid; return the message bytes.

    Raises :class:`DecryptError` when the text cannot be the output of :func:`encrypt` under
    this key, and :class:`AppIdMismatchError` when it decrypts for another appid.
    """
    try:
        data = base64.b64decode(encrypted.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptError("Encrypt is not valid base64") from exc
    if not data or len(data) % 16:
        raise DecryptError(f"Encrypt holds {len(data)} bytes, not whole AES blocks")
    plain = key.decrypt_blocks(data)
    pad = plain[-1]
    if not 1 <= pad <= _BLOCK or pad > len(plain) or plain[-pad:] != bytes((pad,)) * pad:
        raise DecryptError("bad padding: wrong EncodingAESKey, or a corrupted message")
    content = plain[_RANDOM_SIZE:-pad]
    if len(content) < _LENGTH_SIZE:
        raise DecryptError("decrypted data too short: wrong EncodingAESKey?")
    length = int.from_bytes(content[:_LENGTH_SIZE], "big")  # pragma: no mutate (the default)
    if length > len(content) - _LENGTH_SIZE:
        raise DecryptError("message length prefix exceeds the data: wrong EncodingAESKey?")
    end = _LENGTH_SIZE + length
    message, actual = content[_LENGTH_SIZE:end], content[end:]
    if not hmac.compare_digest(actual, appid.encode()):
        raise AppIdMismatchError(appid, _printable(actual))
    return message


def _printable(appid: bytes) -> str:
    """The trailing appid for an error message, or a placeholder when it is not text."""
    text = appid.decode("ascii", errors="replace")  # pragma: no mutate (codec name case)
    if len(appid) <= 64 and text.isprintable() and "\ufffd" not in text:
        return text
    return f"<{len(appid)} undecodable bytes>"

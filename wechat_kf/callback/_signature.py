"""WeChat's callback signatures, computed and compared in constant time.

Both signatures are ``sha1(''.join(sorted(parts)))`` in lowercase hex:

* ``signature`` (plain mode and the URL check): parts ``token, timestamp, nonce``. It does not
  cover the body: only the freshness window and duplicate detection stop a replayed query.
* ``msg_signature`` (safe mode): parts ``token, timestamp, nonce, Encrypt``.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["compute_signature", "signature_matches"]


def compute_signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """Return ``sha1(''.join(sorted([token, timestamp, nonce, *extra])))`` as lowercase hex.

    Python sorts ``str`` by code point, which is the byte order of UTF-8: the order WeChat uses.
    """
    joined = "".join(sorted((token, timestamp, nonce, *extra)))
    try:
        data = joined.encode()
    except UnicodeEncodeError:  # a lone surrogate from a query string: hashed, never refused
        data = joined.encode("utf-8", errors="surrogatepass")
    return hashlib.sha1(data).hexdigest()


def signature_matches(expected: str, received: str) -> bool:
    """Compare two signatures in constant time (``hmac.compare_digest``).

    ``received`` comes from the query string and may hold any character; a non-ASCII one can
    never equal a hex digest, and is refused without comparing (``compare_digest`` takes
    ASCII text only).
    """
    return received.isascii() and hmac.compare_digest(expected, received)

"""Long text in parts WeChat accepts: :func:`split_text`.

WeChat's limit, as far as it is known. The official page of the customer-service send API
(``/cgi-bin/message/custom/send``, developers.weixin.qq.com, "发送客服消息") documents no size
for ``text.content``. A text above the limit is *refused*, not truncated: the call answers
``45002 "content size out of limit"`` and nothing reaches the user (reports on WeChat's
developer community, 2023, where the limit is given as 2,048 bytes; the WeCom API, by contrast,
documents 2,048 bytes and truncates). Peers (chatgpt-on-wechat, WxJava users, MoviePilot) split
at 2,048 UTF-8 bytes, and so does this SDK by default (``MAX_TEXT_BYTES``). A passive text
reply has no documented size either (a 2018 report measured 2,047 bytes); a text longer than
``max_text_bytes`` is never answered passively by :class:`~wechat_kf.callback.CallbackEndpoint`
anyway: it goes in parts through the API. The fake WeChat refuses more than 2,048 bytes with
45002.

How a text is cut. Every part holds at most ``max_bytes`` bytes of UTF-8 and:

* never cuts a character: parts are cut between code points, and a surrogate pair (text that
  came through UTF-16) is joined into its character first;
* never cuts inside a ``<a ...>...</a>`` link (a mini-program or web link in a text message):
  a link longer than a whole part is refused with :class:`~wechat_kf.ValidationError`;
* avoids cutting a character from what follows it on screen (a combining mark, a variation
  selector, an emoji modifier or zero-width joiner sequence, a flag's second half, ``\\r\\n``)
  as long as another cut fits in the part;
* prefers, in this order, the end of a paragraph (a blank line), of a line, of a sentence
  (``。！？!?…``, or ``.;`` before a space), of a clause (``，、；：,;:``) or a word (a space),
  looking back from the fullest cut to half a part (the latest cut of the best kind wins);
* with ``max_parts`` (the messages the window has left), when the natural parts are more: the
  best cut of each part that still lets the rest fit in the parts left (checked by cutting
  the rest as full as it can be), the fuller the better when none in the back half does; when
  the text cannot fit at all, every part as full as it can be;
* drops the whitespace at the cut (the line break, the space), never the text's own.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from typing import Final

from wechat_kf._errors import ValidationError
from wechat_kf.callback._defaults import MAX_TEXT_BYTES

__all__ = ["split_text", "utf8_size"]

_LINK: Final = re.compile(r"<a\s[^>]*>.*?</a\s*>", re.IGNORECASE | re.DOTALL)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_SENTENCE_END: Final = frozenset("。！？!?…")
_SENTENCE_END_BEFORE_SPACE: Final = frozenset(".;")
_CLOSERS: Final = frozenset("\"')]}”’」』）》】")
_CLAUSE_END: Final = frozenset("，、；：,;:")
_ZWJ: Final = "\u200d"

# How good a cut before position i is (higher is better).
_ANY, _WORD, _CLAUSE, _SENTENCE, _LINE, _PARAGRAPH = range(6)
# Any cut in the front half of a part: below every kind of the back half.
_FRONT_HALF: Final = _ANY - 1


def utf8_size(char: str) -> int:
    """Bytes of one code point in UTF-8."""
    code = ord(char)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def _clings(char: str) -> bool:
    """Whether ``char`` belongs on screen with the character before it."""
    code = ord(char)
    return (
        char == _ZWJ
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin tones
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences
        # marks, the variation selectors (FE00-FE0F, E0100-E01EF) among them: all are Mn
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _joined(text: str) -> str:
    """``text`` with surrogate pairs joined into characters; a lone surrogate is refused."""
    if not _SURROGATE.search(text):
        return text
    try:
        # no mutants: a codec name's case changes nothing
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")  # pragma: no mutate
    except UnicodeDecodeError:
        raise ValidationError(
            "content", "holds a lone surrogate (half of a UTF-16 pair): it has no UTF-8 form"
        ) from None


class _Text:
    """One text with what cutting it needs: byte offsets, links, the quality of each cut."""

    def __init__(self, text: str, max_bytes: int) -> None:
        self.text = text
        self.max_bytes = max_bytes
        offsets = [0]  # pragma: no mutate (only differences of offsets are ever read)
        for char in text:
            offsets.append(offsets[-1] + utf8_size(char))
        self.offsets = offsets
        # inside[i]: a cut before position i would fall inside a link
        self.inside = bytearray(len(text) + 1)
        for link in _LINK.finditer(text):
            start, end = link.span()
            if offsets[end] - offsets[start] > max_bytes:
                raise ValidationError(
                    "content",
                    f"holds a link of {offsets[end] - offsets[start]} bytes: more than a part "
                    f"({max_bytes} bytes), so it cannot be sent whole",
                    link.group()[:80],
                )
            self.inside[start + 1 : end] = b"\x01" * (end - start - 1)

    def fullest(self, start: int) -> int:
        """The furthest position a part from ``start`` may end at (at most ``max_bytes``)."""
        limit = self.offsets[start] + self.max_bytes
        return bisect.bisect_right(self.offsets, limit, lo=start) - 1

    def quality(self, i: int) -> int | None:
        """How good a cut before position ``i`` (inside the text) is; ``None``: never (inside
        a link, or it separates what shows as one character)."""
        if self.inside[i] or self.breaks_a_character(i):
            return None
        text = self.text
        before, after = text[i - 1], text[i]
        if before == "\n":
            line_end = i - 2 if text[i - 2 : i - 1] == "\r" else i - 1
            blank = text[line_end - 1 : line_end] == "\n" or after in ("\n", "\r")
            return _PARAGRAPH if blank else _LINE
        if before in _SENTENCE_END or (before in _SENTENCE_END_BEFORE_SPACE and after.isspace()):
            return _SENTENCE
        if before in _CLOSERS and text[i - 2 : i - 1] in _SENTENCE_END:
            return _SENTENCE
        if before.isspace():
            return _WORD
        return _CLAUSE if before in _CLAUSE_END else _ANY

    def breaks_a_character(self, i: int) -> bool:
        """Whether a cut before ``i`` (inside the text) separates what shows as one character."""
        text = self.text
        before, after = text[i - 1], text[i]
        return (
            _clings(after)
            or before == _ZWJ
            or (before == "\r" and after == "\n")
            or (_regional(before) and _regional(after))
        )

    def fullest_cut(self, start: int) -> int:
        """The furthest cut of a part from ``start``: clean if any, else outside a link."""
        end = self.fullest(start)
        if end == len(self.text):
            return end
        for clean in (True, False):
            for i in range(end, start, -1):
                if not self.inside[i] and not (clean and self.breaks_a_character(i)):
                    return i
        raise AssertionError("a link longer than a part is refused")  # pragma: no mutate

    def next_start(self, cut: int) -> int:
        """Where the part after a cut at ``cut`` starts: past the cut's space and line breaks."""
        text, start = self.text, cut
        if text[cut - 1] not in "\r\n":
            while start < len(text) and text[start] in " \t":
                start += 1
        while start < len(text) and text[start] in "\r\n":
            start += 1
        return start

    def parts_needed(self, start: int) -> int:
        """The fewest parts the text from ``start`` takes (each as full as it can be)."""
        count = 0
        while start < len(self.text):
            start = self.next_start(self.fullest_cut(start))
            count += 1
        return count

    def cut(self, start: int, parts_left: int | None) -> int:
        """Where the part from ``start`` ends.

        The best cut from half a part to the fullest (the latest of the best kind); with
        ``parts_left`` (this part included), the best that still lets the rest fit in the parts
        after it, the fuller the better once the back half has none.
        """
        end = self.fullest(start)
        if end == len(self.text):
            return end
        # at least 2 characters from start: a part holds 16 bytes or more, a character 4 at most
        half = bisect.bisect_left(self.offsets, self.offsets[start] + self.max_bytes // 2)
        kinds: dict[int, list[int]] = {}
        for i in range(end, start, -1):
            quality = self.quality(i)
            if quality is not None:
                kinds.setdefault(quality if i >= half else _FRONT_HALF, []).append(i)
        for kind in sorted(kinds, reverse=True):
            for i in kinds[kind]:  # latest first
                if parts_left is None or 1 + self.parts_needed(self.next_start(i)) <= parts_left:
                    return i
        return self.fullest_cut(start)

    def split(self, parts_left: int | None) -> list[str]:
        """The parts: natural (``None``), or fitting in ``parts_left`` when the text can; when
        it cannot, each part as full as it can be."""
        # A shortcut, so no mutants: when the text cannot fit, cut() finds no cut that lets
        # it fit either (the fullest parts are the fewest), and falls back to fullest_cut().
        fullest = parts_left is not None and self.parts_needed(0) > parts_left  # pragma: no mutate
        parts: list[str] = []
        start = 0
        while start < len(self.text):
            left = None if parts_left is None else parts_left - len(parts)
            end = self.fullest_cut(start) if fullest else self.cut(start, left)
            part = self.text[start:end].rstrip()
            if part:
                parts.append(part)
            start = self.next_start(end)
        return parts


def split_text(
    text: str, max_bytes: int = MAX_TEXT_BYTES, *, max_parts: int | None = None
) -> list[str]:
    """Split ``text`` into parts of at most ``max_bytes`` UTF-8 bytes, for one message each.

    A text that fits is returned whole (``[text]``). Parts are cut on the best boundary
    described in :mod:`this module <wechat_kf.callback._split>`: never inside a character or a
    ``<a ...>...</a>`` link, preferably at a paragraph, line or sentence end. ``max_parts``
    (the messages left in the user's window): when the natural parts are more, they are cut
    fuller, the best boundaries that still let the text fit in ``max_parts``; if it cannot
    fit, each part is as full as it can be (the result is then longer than ``max_parts``).
    Raises :class:`~wechat_kf.ValidationError` for a link longer than a part or a lone
    surrogate.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 16:
        raise ValidationError("max_bytes", "must be an int of at least 16 (bytes)", max_bytes)
    if max_parts is not None and (
        isinstance(max_parts, bool) or not isinstance(max_parts, int) or max_parts < 1
    ):
        raise ValidationError("max_parts", "must be a positive int", max_parts)
    text = _joined(text)
    if len(text.encode("utf-8")) <= max_bytes:
        return [text]
    source = _Text(text, max_bytes)
    parts = source.split(None)
    if max_parts is None or len(parts) <= max_parts:
        return parts
    return source.split(max_parts)

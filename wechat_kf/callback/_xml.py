"""WeChat's push XML: a hardened, bounded parser to a flat field mapping, and the reply builder.

Parsing runs the standard library's expat directly, hardened the way ``defusedxml`` hardens it
(``forbid_dtd=True``), without a dependency for plain mode:

* a ``<!DOCTYPE`` aborts the parse the moment expat reports it, before any entity declaration
  in it is read, so internal entities ("billion laughs"), external entities (XXE) and
  parameter entities never exist; entity-declaration and external-entity handlers refuse as
  a second line. This is enforced inside the parser, not by searching the bytes for
  ``<!DOCTYPE``, so it holds in every encoding expat accepts (UTF-16 included);
* the work is bounded: the body size is capped before parsing, the element count
  (``MAX_XML_ELEMENTS``) and the nesting depth (``MAX_XML_DEPTH``) while parsing, which stops
  the moment a bound is crossed (:class:`XMLLimitError`), as it does for a root other than
  ``<xml>``;
* a reference to an undeclared entity is an expat error (nothing is ever fetched).

WeChat's XML is a flat record under ``<xml>``, with a few nested groups (``ScanCodeInfo``,
``SendPicsInfo/PicList/item``). :func:`parse_fields` flattens it in one pass: a top-level leaf
is keyed by its tag (``"MsgType"``), a nested leaf by its path (``"ScanCodeInfo/ScanType"``),
and a tag that repeats among its siblings is numbered (``"PicList/item[0]/PicMd5Sum"``).
Attributes, comments and processing instructions are ignored; WeChat uses none.

A safe-mode push's outer envelope is not parsed at all: :func:`encrypt_candidates` finds its
``<Encrypt>`` text with one linear scan, since nothing else in the envelope is authenticated
or needed (``msg_signature`` covers the ciphertext alone).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import islice
from typing import Final, NoReturn, TypeAlias
from xml.parsers import expat

from wechat_kf.callback._defaults import (
    MAX_BODY_SIZE,
    MAX_ENCRYPT_CANDIDATES,
    MAX_XML_DEPTH,
    MAX_XML_ELEMENTS,
)
from wechat_kf.callback._errors import (
    BodyTooLargeError,
    HostileXMLError,
    MalformedCallbackError,
    XMLLimitError,
    XMLParseError,
)

__all__ = ["XMLValue", "build_xml", "encrypt_candidates", "is_xml_text", "parse_fields"]

#: A value :func:`build_xml` can write: text (as CDATA), an integer, or a nested group.
XMLValue: TypeAlias = "str | int | Mapping[str, XMLValue]"

# Characters XML 1.0 allows; anything else cannot be written, even in CDATA.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TAG: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# <Encrypt> holding base64, bare or in one CDATA section, surrounding whitespace allowed.
_ENCRYPT: Final = re.compile(
    rb"<Encrypt>\s*(?:<!\[CDATA\[\s*([A-Za-z0-9+/=]+)\s*\]\]>|([A-Za-z0-9+/=]+))\s*</Encrypt>"
)


class _Element:
    """One open element: its field key, its text so far, its children's tags counted."""

    __slots__ = ("counts", "key", "leaf", "text")

    def __init__(self, key: str) -> None:
        self.key = key
        self.text = ""
        self.leaf = True
        self.counts: dict[str, int] | None = None


class _Flattener:
    """expat callbacks writing the flat field mapping as elements close; bounded; no DTD."""

    __slots__ = ("elements", "fields", "max_depth", "max_elements", "stack")

    def __init__(self, max_depth: int, max_elements: int) -> None:
        self.max_depth = max_depth
        self.max_elements = max_elements
        self.elements = 0
        self.stack: list[_Element] = []
        self.fields: dict[str, str] = {}

    def start(self, tag: str, _attributes: object) -> None:
        self.elements += 1
        if self.elements > self.max_elements:
            raise XMLLimitError("elements", self.max_elements)
        stack = self.stack
        if not stack:
            if tag != "xml":
                raise XMLParseError(f"root element is <{tag[:40]}>, not <xml>")
            stack.append(_Element(""))
            return
        if len(stack) >= self.max_depth:
            raise XMLLimitError("depth", self.max_depth)
        parent = stack[-1]
        parent.leaf = False
        counts = parent.counts
        if counts is None:
            counts = parent.counts = {}
        seen = counts.get(tag, 0)
        counts[tag] = seen + 1
        prefix = f"{parent.key}/" if parent.key else ""
        if seen == 0:
            stack.append(_Element(prefix + tag))
            return
        if seen == 1:  # a repeated tag: number the first one too
            self._number_first(prefix + tag)
        stack.append(_Element(f"{prefix}{tag}[{seen}]"))

    def _number_first(self, old: str) -> None:
        fields = self.fields
        below = old + "/"
        for key in [k for k in fields if k == old or k.startswith(below)]:
            fields[old + "[0]" + key[len(old) :]] = fields.pop(key)

    def end(self, _tag: str) -> None:
        element = self.stack.pop()
        if element.leaf and self.stack:
            self.fields[element.key] = element.text

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1].text += text

    @staticmethod
    def refuse_doctype(*_args: object) -> NoReturn:
        raise HostileXMLError("XML with a DOCTYPE is refused (WeChat never sends one)")

    @staticmethod
    def refuse_entity(*_args: object) -> NoReturn:
        raise HostileXMLError("XML declaring entities is refused")

    @staticmethod
    def refuse_external(*_args: object) -> NoReturn:
        raise HostileXMLError("XML referencing an external entity is refused")


def parse_fields(data: bytes | bytearray, *, max_size: int = MAX_BODY_SIZE) -> dict[str, str]:
    """Parse a WeChat XML document into its flat field mapping (see the module docstring).

    Raises :class:`BodyTooLargeError`, :class:`HostileXMLError`, :class:`XMLLimitError` or
    :class:`XMLParseError`; never an expat exception.
    """
    if len(data) > max_size:
        raise BodyTooLargeError(len(data), max_size)
    builder = _Flattener(MAX_XML_DEPTH, MAX_XML_ELEMENTS)
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = builder.refuse_doctype
    parser.EntityDeclHandler = builder.refuse_entity
    parser.UnparsedEntityDeclHandler = builder.refuse_entity
    parser.ExternalEntityRefHandler = builder.refuse_external
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(bytes(data), True)
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code) or "malformed XML"
        raise XMLParseError(f"{reason} (line {exc.lineno}, column {exc.offset})") from exc
    except (ValueError, LookupError) as exc:  # an encoding expat or Python cannot decode
        raise XMLParseError(f"undecodable XML: {type(exc).__name__}") from exc
    return builder.fields


def encrypt_candidates(body: bytes | bytearray) -> list[str]:
    """The base64 text of each ``<Encrypt>`` element in a safe-mode envelope, in order.

    One linear scan, no XML parse: the envelope is not authenticated (``msg_signature`` covers
    the ciphertext alone), so the caller tries each candidate against the signature and
    decrypts only the one that matches. Usually there is exactly one; a compatibility-mode
    push quoting ``<Encrypt>...</Encrypt>`` in a user's text has more. Raises
    :class:`MalformedCallbackError` for none or more than ``MAX_ENCRYPT_CANDIDATES``.
    """
    found = [
        (match[1] or match[2]).decode("ascii")
        for match in islice(_ENCRYPT.finditer(body), MAX_ENCRYPT_CANDIDATES + 1)
    ]
    if not found:
        raise MalformedCallbackError("the encrypted push has no <Encrypt> element holding base64")
    if len(found) > MAX_ENCRYPT_CANDIDATES:
        raise MalformedCallbackError(
            f"the encrypted push has more than {MAX_ENCRYPT_CANDIDATES} <Encrypt> elements"
        )
    return found


def is_xml_text(text: str) -> bool:
    """Tell whether every character of ``text`` may appear in an XML 1.0 document."""
    return _NOT_XML_CHAR.search(text) is None


def build_xml(fields: Mapping[str, XMLValue]) -> bytes:
    """Write ``<xml>`` with one element per field, in order, as UTF-8 without a declaration.

    Text goes into CDATA (a ``]]>`` inside is split across two sections), integers as digits,
    mappings as nested elements. This is the byte form of WeChat's documented samples.
    """
    return f"<xml>{_elements(fields)}</xml>".encode()


def _elements(fields: Mapping[str, XMLValue]) -> str:
    parts: list[str] = []
    for tag, value in fields.items():
        if not _TAG.fullmatch(tag):
            raise ValueError(f"not an XML tag name: {tag!r}")
        if isinstance(value, Mapping):
            inner = _elements(value)
        elif isinstance(value, bool):
            raise TypeError(f"{tag}: a bool has no XML form")
        elif isinstance(value, int):
            inner = str(value)
        else:
            if not is_xml_text(value):
                raise ValueError(f"{tag}: holds a character XML 1.0 cannot carry")
            inner = "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"
        parts.append(f"<{tag}>{inner}</{tag}>")
    return "".join(parts)

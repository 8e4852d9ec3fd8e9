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
from typing import Any, Final, NoReturn, TypeAlias
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
# One leaf of a flat document: text without markup or references, or one CDATA section.
_FLAT_ELEMENT: Final = re.compile(
    r"[ \t\n]*<([A-Za-z_][A-Za-z0-9_.-]*)>"
    r"(?:<!\[CDATA\[([^\]]*(?:\](?!\]>)[^\]]*)*)\]\]>|([^<&\]]*))</\1>"
)
_FLAT_END: Final = re.compile(r"[ \t\n]*</xml>[ \t\n]*\Z")
# <Encrypt> holding base64, bare or in one CDATA section, surrounding whitespace allowed.
_ENCRYPT: Final = re.compile(
    rb"<Encrypt>\s*(?:<!\[CDATA\[\s*([A-Za-z0-9+/=]+)\s*\]\]>|([A-Za-z0-9+/=]+))\s*</Encrypt>"
)


def _refuse_doctype(*_args: object) -> NoReturn:
    raise HostileXMLError("XML with a DOCTYPE is refused (WeChat never sends one)")


# The second line of defence: entities exist only in a DOCTYPE, refused before any is read,
# so these never run (their mutants cannot be told apart: not mutated).
def _refuse_entity(*_args: object) -> NoReturn:
    raise HostileXMLError("XML declaring entities is refused")  # pragma: no mutate


def _refuse_external(*_args: object) -> NoReturn:
    raise HostileXMLError("XML referencing an external entity is refused")  # pragma: no mutate


def _number_first(fields: dict[str, str], old: str) -> None:
    """A tag repeats among its siblings: rename the first one's fields ``tag`` -> ``tag[0]``."""
    below = old + "/"
    for key in [k for k in fields if k == old or k.startswith(below)]:
        fields[old + "[0]" + key[len(old) :]] = fields.pop(key)


def parse_fields(data: bytes | bytearray, *, max_size: int = MAX_BODY_SIZE) -> dict[str, str]:
    """Parse a WeChat XML document into its flat field mapping (see the module docstring).

    Raises :class:`BodyTooLargeError`, :class:`HostileXMLError`, :class:`XMLLimitError` or
    :class:`XMLParseError`; never an expat exception.
    """
    if len(data) > max_size:
        raise BodyTooLargeError(len(data), max_size)
    # The fast path gives what expat gives (or None), so skipping it changes nothing but speed.
    fields = _flat_fields(bytes(data))  # pragma: no mutate
    if fields is not None:
        return fields
    return _parse_with_expat(bytes(data))


def _flat_fields(data: bytes) -> dict[str, str] | None:
    """The fields of the common case, a flat ``<xml>`` of distinct leaves, without expat.

    Nearly every push is ``<xml><Tag><![CDATA[text]]></Tag><Tag>123</Tag>...</xml>``: read by
    one regular expression per element, this costs a third of an expat parse. Anything else
    (nesting, a repeated tag, references, attributes, a declaration, ``\r`` line ends, a
    character XML forbids, not UTF-8) returns ``None``, and expat decides: the result is
    always the one expat would give.
    """
    if b"\r" in data or not data.startswith(b"<xml>"):
        return None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    if _NOT_XML_CHAR.search(text) is not None:
        return None
    fields: dict[str, str] = {}
    match = _FLAT_ELEMENT.match
    position = 5  # after <xml>
    while (element := match(text, position)) is not None:
        tag = element[1]
        if tag in fields:
            return None  # a repeated tag is numbered
        cdata = element[2]
        fields[tag] = element[3] if cdata is None else cdata
        position = element.end()
    if len(fields) >= MAX_XML_ELEMENTS or _FLAT_END.match(text, position) is None:
        return None
    return fields


def _parse_with_expat(data: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    # One entry per open element: [field key, its text so far, has children, children's tags
    # counted]. Plain lists and closures: this runs for every element of every push.
    stack: list[list[Any]] = []
    budget = MAX_XML_ELEMENTS

    def start(tag: str, _attributes: object) -> None:
        nonlocal budget
        budget -= 1
        if budget < 0:
            raise XMLLimitError("elements", MAX_XML_ELEMENTS)
        if not stack:
            if tag != "xml":
                raise XMLParseError(f"root element is <{tag[:40]}>, not <xml>")
            stack.append(["", "", False, {}])  # pragma: no mutate (the root is never a field)
            return
        if len(stack) >= MAX_XML_DEPTH:
            raise XMLLimitError("depth", MAX_XML_DEPTH)
        parent = stack[-1]
        parent[2] = True
        counts = parent[3]
        seen = counts.get(tag, 0)
        counts[tag] = seen + 1
        key = f"{parent[0]}/{tag}" if parent[0] else tag
        if seen:
            if seen == 1:
                _number_first(fields, key)
            key = f"{key}[{seen}]"
        stack.append([key, "", False, {}])

    def end(_tag: str) -> None:
        key, text, has_children, _ = stack.pop()
        if not has_children and stack:
            fields[key] = text

    def text(data: str) -> None:
        stack[-1][1] += data

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity  # pragma: no mutate (the second line, see above)
    parser.UnparsedEntityDeclHandler = _refuse_entity  # pragma: no mutate
    parser.ExternalEntityRefHandler = _refuse_external  # pragma: no mutate
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    # Speed only: fewer, longer text callbacks; attributes (ignored) as a list.
    parser.buffer_text = True  # pragma: no mutate
    parser.ordered_attributes = True  # pragma: no mutate
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code) or "malformed XML"  # pragma: no mutate (never None)
        raise XMLParseError(f"{reason} (line {exc.lineno}, column {exc.offset})") from exc
    except (ValueError, LookupError) as exc:  # an encoding expat or Python cannot decode
        raise XMLParseError(f"undecodable XML: {type(exc).__name__}") from exc
    return fields


def encrypt_candidates(body: bytes | bytearray) -> list[str]:
    """The base64 text of each ``<Encrypt>`` element in a safe-mode envelope, in order.

    One linear scan, no XML parse: the envelope is not authenticated (``msg_signature`` covers
    the ciphertext alone), so the caller tries each candidate against the signature and
    decrypts only the one that matches. Usually there is exactly one; a compatibility-mode
    push quoting ``<Encrypt>...</Encrypt>`` in a user's text has more. Raises
    :class:`MalformedCallbackError` for none or more than ``MAX_ENCRYPT_CANDIDATES``.
    """
    first = _ENCRYPT.search(body)  # pragma: no mutate (the usual case's shortcut, see below)
    if first is not None and body.find(b"<Encrypt>", first.end()) < 0:  # the usual case
        return [(first[1] or first[2]).decode()]
    found = [
        (match[1] or match[2]).decode()
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

"""WeChat's push XML: a hardened parser to a flat field mapping, and the reply builder.

Parsing runs the standard library's expat directly, hardened the way ``defusedxml`` hardens it
(``forbid_dtd=True``), without a dependency for plain mode:

* a ``<!DOCTYPE`` aborts the parse the moment expat reports it, before any entity declaration
  in it is read, so internal entities ("billion laughs"), external entities (XXE) and
  parameter entities never exist; entity-declaration and external-entity handlers refuse as
  a second line. This is enforced inside the parser, not by searching the bytes for
  ``<!DOCTYPE``, so it holds in every encoding expat accepts (UTF-16 included);
* the body size is capped before parsing and the nesting depth while parsing;
* a reference to an undeclared entity is an expat error (nothing is ever fetched).

WeChat's XML is a flat record under ``<xml>``, with a few nested groups (``ScanCodeInfo``,
``SendPicsInfo/PicList/item``). :func:`parse_fields` flattens it: a top-level leaf is keyed by
its tag (``"MsgType"``), a nested leaf by its path (``"ScanCodeInfo/ScanType"``), and a tag that
repeats among its siblings is numbered (``"PicList/item[0]/PicMd5Sum"``). Attributes, comments
and processing instructions are ignored; WeChat uses none.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Final, NoReturn, TypeAlias
from xml.parsers import expat

from wechat_kf.callback._defaults import MAX_BODY_SIZE, MAX_XML_DEPTH
from wechat_kf.callback._errors import BodyTooLargeError, HostileXMLError, XMLParseError

__all__ = ["XMLValue", "build_xml", "is_xml_text", "parse_fields"]

#: A value :func:`build_xml` can write: text (as CDATA), an integer, or a nested group.
XMLValue: TypeAlias = "str | int | Mapping[str, XMLValue]"

# Characters XML 1.0 allows; anything else cannot be written, even in CDATA.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TAG: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class _Node:
    __slots__ = ("children", "tag", "text")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.children: list[_Node] = []
        self.text: list[str] = []


class _TreeBuilder:
    """expat callbacks building a minimal tree; refuses everything a DTD could bring."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.stack: list[_Node] = []
        self.root: _Node | None = None

    def start(self, tag: str, _attributes: object) -> None:
        if len(self.stack) >= self.max_depth:
            raise XMLParseError(f"XML nested deeper than {self.max_depth} elements")
        node = _Node(tag)
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)

    def end(self, _tag: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1].text.append(text)

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

    Raises :class:`BodyTooLargeError`, :class:`HostileXMLError` or :class:`XMLParseError`;
    never an expat exception.
    """
    if len(data) > max_size:
        raise BodyTooLargeError(len(data), max_size)
    builder = _TreeBuilder(MAX_XML_DEPTH)
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
    root = builder.root
    if root is None:  # pragma: no cover - expat reports "no element found" first
        raise XMLParseError("no root element")
    if root.tag != "xml":
        raise XMLParseError(f"root element is <{root.tag[:40]}>, not <xml>")
    fields: dict[str, str] = {}
    _flatten(root, "", fields)
    return fields


def _flatten(node: _Node, prefix: str, into: dict[str, str]) -> None:
    counts = Counter(child.tag for child in node.children)
    seen: Counter[str] = Counter()
    for child in node.children:
        name = child.tag
        if counts[name] > 1:
            name = f"{name}[{seen[child.tag]}]"
            seen[child.tag] += 1
        if child.children:
            _flatten(child, f"{prefix}{name}/", into)
        else:
            into[f"{prefix}{name}"] = "".join(child.text)


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

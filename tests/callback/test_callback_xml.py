"""The hardened parser: hostile XML refused, fuzzing gives only typed errors, exact bytes built."""

from __future__ import annotations

import tracemalloc
import xml.sax
import xml.sax.handler
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET
import defusedxml.sax as DefusedSax
import pytest
from defusedxml.common import DefusedXmlException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.callback.callback_fakes import APPID, TOKEN, FakeWeChat, push_xml, text_push
from wechat_kf.callback import (
    BodyTooLargeError,
    CallbackError,
    CallbackHandler,
    HostileXMLError,
    MalformedCallbackError,
    PlaintextPushError,
    SignatureError,
    XMLLimitError,
    XMLParseError,
)
from wechat_kf.callback._defaults import MAX_XML_DEPTH, MAX_XML_ELEMENTS
from wechat_kf.callback._messages import incoming_from_fields
from wechat_kf.callback._xml import (
    _flat_fields,
    _parse_with_expat,
    build_xml,
    encrypt_candidates,
    is_xml_text,
    parse_fields,
)

T = TypeVar("T")

# --------------------------------------------------------------------------- flattening


def test_flat_fields_nested_paths_and_numbered_repeats() -> None:
    body = (
        b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><CreateTime>1700000000</CreateTime>"
        b"<Event><![CDATA[pic_sysphoto]]></Event><SendPicsInfo><Count>2</Count><PicList>"
        b"<item><PicMd5Sum><![CDATA[aaa]]></PicMd5Sum></item>"
        b"<item><PicMd5Sum><![CDATA[bbb]]></PicMd5Sum></item></PicList></SendPicsInfo>"
        b"<Empty></Empty><Self/></xml>"
    )
    assert parse_fields(body) == {
        "ToUserName": "gh_1",
        "CreateTime": "1700000000",
        "Event": "pic_sysphoto",
        "SendPicsInfo/Count": "2",
        "SendPicsInfo/PicList/item[0]/PicMd5Sum": "aaa",
        "SendPicsInfo/PicList/item[1]/PicMd5Sum": "bbb",
        "Empty": "",
        "Self": "",
    }


def test_text_is_kept_exactly_and_predefined_references_decode() -> None:
    body = (
        b"<xml><A>  two  spaces </A><B>a &lt;b&gt; &amp; &#x4e2d;&#25991;</B>"
        b"<C><![CDATA[<not>&markup;]]></C><D>x<![CDATA[y]]>z</D><!-- c --><?pi x?></xml>"
    )
    assert parse_fields(body) == {
        "A": "  two  spaces ",
        "B": "a <b> & 中文",
        "C": "<not>&markup;",
        "D": "xyz",
    }


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0" encoding="UTF-16"?><xml><A>中文</A></xml>'.encode("utf-16"),
        '<?xml version="1.0" encoding="UTF-8"?><xml><A>中文</A></xml>'.encode(),
        b"\xef\xbb\xbf<xml><A>\xe4\xb8\xad\xe6\x96\x87</A></xml>",
    ],
    ids=["utf-16", "utf-8-declared", "utf-8-bom"],
)
def test_declared_encodings_are_honoured(body: bytes) -> None:
    assert parse_fields(body) == {"A": "中文"}


def test_multibyte_legacy_encodings_are_a_parse_error() -> None:
    # expat decodes UTF-8, UTF-16 and single-byte codecs only; WeChat sends UTF-8.
    body = '<?xml version="1.0" encoding="GBK"?><xml><A>中文</A></xml>'.encode("gbk")
    with pytest.raises(XMLParseError, match="undecodable XML"):
        parse_fields(body)


# --------------------------------------------------------------------------- hostile XML

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><xml><A>&lol9;</A></xml>"
)


def _hostile(tmp_path: Path) -> dict[str, bytes]:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    url = secret.as_uri().encode()
    return {
        "billion-laughs": LAUGHS,
        "quadratic-blowup": b'<!DOCTYPE x [<!ENTITY a "'
        + b"a" * 50_000
        + b'">]><xml><A>'
        + b"&a;" * 1000
        + b"</A></xml>",
        "xxe-file": b'<!DOCTYPE x [<!ENTITY e SYSTEM "' + url + b'">]><xml><A>&e;</A></xml>',
        "xxe-http": b'<!DOCTYPE x [<!ENTITY e SYSTEM "http://127.0.0.1:9/x">]><xml><A>&e;</A></xml>',
        "parameter-entity": b'<!DOCTYPE x [<!ENTITY % p SYSTEM "' + url + b'"> %p;]><xml/>',
        "external-dtd": b'<!DOCTYPE xml SYSTEM "' + url + b'"><xml/>',
        "public-dtd": b'<!DOCTYPE xml PUBLIC "-//x//y" "http://127.0.0.1:9/x.dtd"><xml/>',
        "unparsed-entity": b'<!DOCTYPE x [<!NOTATION n SYSTEM "n"><!ENTITY e SYSTEM "x" NDATA n>]>'
        b"<xml/>",
        "bare-doctype": b"<!DOCTYPE xml><xml><A>1</A></xml>",
        "doctype-after-declaration": b'<?xml version="1.0"?>\n  <!DOCTYPE xml []>\n<xml/>',
        "utf-16-doctype": '<!DOCTYPE x [<!ENTITY e "boom">]><xml><A>&e;</A></xml>'.encode("utf-16"),
        "utf-16-be-doctype": b"\xfe\xff"
        + '<!DOCTYPE x [<!ENTITY e "boom">]><xml/>'.encode("utf-16-be"),
    }


HOSTILE_IDS = [
    "billion-laughs",
    "quadratic-blowup",
    "xxe-file",
    "xxe-http",
    "parameter-entity",
    "external-dtd",
    "public-dtd",
    "unparsed-entity",
    "bare-doctype",
    "doctype-after-declaration",
    "utf-16-doctype",
    "utf-16-be-doctype",
]


@pytest.mark.parametrize("name", HOSTILE_IDS)
def test_hostile_xml_is_refused_unexpanded_and_unread(name: str, tmp_path: Path) -> None:
    body = _hostile(tmp_path)[name]
    tracemalloc.start()
    try:
        with pytest.raises(HostileXMLError) as info:
            parse_fields(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused before any entity expands: the billion laughs would need gigabytes, the
    # quadratic blowup 50 MB; the refusal holds a few copies of the body at most.
    assert peak < 4 * len(body) + 256 * 1024, f"{peak} bytes allocated: entities expanded?"
    assert "TOP-SECRET" not in str(info.value)
    # defusedxml (forbid_dtd) agrees on every one of them.
    with pytest.raises(DefusedXmlException):
        DefusedET.fromstring(body, forbid_dtd=True)


@pytest.mark.parametrize("name", ["billion-laughs", "xxe-file", "utf-16-doctype"])
def test_hostile_xml_is_refused_by_the_handler_in_both_modes(name: str, tmp_path: Path) -> None:
    body = _hostile(tmp_path)[name]
    plain = CallbackHandler(token=TOKEN, appid=APPID)
    with pytest.raises(HostileXMLError):
        plain.parse(FakeWeChat().push(b"")[0], body)
    key = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
    safe = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key)
    # A hostile outer envelope is never parsed (only scanned for <Encrypt>), and hostile XML
    # inside a correctly signed and encrypted push is refused by the parser.
    with pytest.raises(MalformedCallbackError, match="no <Encrypt>"):
        safe.parse({"encrypt_type": "aes"}, body)
    with pytest.raises(HostileXMLError):
        safe.parse(*FakeWeChat(encoding_aes_key=key).push(body))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "no element found"),
        (b"<xml>", "no element found"),
        (b"<xml><A>&e;</A></xml>", "undefined entity"),
        (b"<xml><A>&#0;</A></xml>", "reference to invalid character"),
        (b"<xml/><xml/>", "junk after document element"),
        (b"text<xml/>", "not well-formed"),
        (b"<xml><A></B></xml>", "mismatched tag"),
        (b"<root><A>1</A></root>", "root element is <root>, not <xml>"),
        (b'<?xml version="1.0" encoding="nope"?><xml/>', "undecodable XML: LookupError"),
        (b'<?xml version="1.0" encoding="utf-7"?><xml/>', "undecodable XML: ValueError"),
        (b"\xff\xfe\x00\x00garbage", "not well-formed|invalid token|encoding"),
        (b"<xml><A>\x80</A></xml>", "not well-formed"),
    ],
)
def test_malformed_xml_is_a_parse_error(body: bytes, match: str) -> None:
    with pytest.raises(XMLParseError, match=match) as info:
        parse_fields(body)
    assert not isinstance(info.value, HostileXMLError)


def test_body_size_is_capped_before_parsing() -> None:
    body = b"<xml><A>" + b"a" * 100 + b"</A></xml>"
    assert parse_fields(body, max_size=len(body)) == {"A": "a" * 100}
    with pytest.raises(BodyTooLargeError) as info:
        parse_fields(body, max_size=len(body) - 1)
    assert (info.value.size, info.value.limit) == (len(body), len(body) - 1)
    with pytest.raises(BodyTooLargeError):  # refused even when it is not XML at all
        parse_fields(b"\x00" * 11, max_size=10)


def test_depth_is_capped() -> None:
    def nested(depth: int) -> bytes:
        inner = "".join(f"<e{i}>" for i in range(depth - 1))
        outer = "".join(f"</e{i}>" for i in reversed(range(depth - 1)))
        return f"<xml>{inner}x{outer}</xml>".encode()

    assert parse_fields(nested(MAX_XML_DEPTH))
    with pytest.raises(XMLLimitError, match=f"deeper than {MAX_XML_DEPTH}") as info:
        parse_fields(nested(MAX_XML_DEPTH + 1))
    assert (info.value.kind, info.value.limit) == ("depth", MAX_XML_DEPTH)
    with pytest.raises(XMLLimitError):
        parse_fields(b"<xml>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</xml>", max_size=10**6)


def _elements(count: int) -> bytes:
    """<xml> and count - 1 empty elements: count elements in all."""
    return b"<xml>" + b"<a/>" * (count - 1) + b"</xml>"


def test_the_element_count_is_capped() -> None:
    assert parse_fields(_elements(MAX_XML_ELEMENTS)) == {
        f"a[{i}]": "" for i in range(MAX_XML_ELEMENTS - 1)
    }
    with pytest.raises(XMLLimitError, match=f"more than {MAX_XML_ELEMENTS} elements") as info:
        parse_fields(_elements(MAX_XML_ELEMENTS + 1))
    assert (info.value.kind, info.value.limit) == ("elements", MAX_XML_ELEMENTS)
    assert isinstance(info.value, XMLParseError)  # a 400 like any malformed body


def test_parsing_stops_at_the_bound() -> None:
    # The bound is checked as each element opens: the parser never reaches what follows it
    # (here a syntax error that would otherwise be reported), so 60,000 elements cost no
    # more than 1,025.
    past_the_bound = _elements(MAX_XML_ELEMENTS + 1)[: -len(b"</xml>")] + b"<<<not xml"
    with pytest.raises(XMLLimitError):
        parse_fields(past_the_bound)
    with pytest.raises(XMLParseError, match="not well-formed"):
        parse_fields(_elements(MAX_XML_ELEMENTS)[: -len(b"</xml>")] + b"<<<not xml")
    # the root is checked as it opens, too
    with pytest.raises(XMLParseError, match="root element is <html>"):
        parse_fields(b"<html>" + b"<a/>" * 60_000 + b"<<<")


def test_the_hostile_push_of_issue_10_is_refused_unread_or_bounded() -> None:
    # 234 KB of 60,000 empty elements. Safe mode: never parsed, refused by msg_signature.
    # Plain mode with a captured (valid) query: parsed up to the element bound only.
    key = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
    elements = b"<a/>" * 60_000
    assert len(elements) > 234_000
    safe = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key)
    query, _ = FakeWeChat(encoding_aes_key=key).push(b"<xml/>")
    with pytest.raises(SignatureError):
        safe.parse(query, b"<xml>" + elements + b"<Encrypt>QUJD</Encrypt></xml>")
    plain = CallbackHandler(token=TOKEN, appid=APPID)
    with pytest.raises(XMLLimitError) as info:
        plain.parse(FakeWeChat().push(b"")[0], b"<xml>" + elements + b"</xml>")
    assert info.value.limit == MAX_XML_ELEMENTS


def test_a_safe_mode_envelope_is_scanned_not_parsed() -> None:
    # Only <Encrypt> is read from the envelope, and it must meet msg_signature: a correctly
    # signed ciphertext in an envelope that is not even XML still opens, and XML in the
    # envelope that the parser would refuse (a DOCTYPE) is never looked at.
    key = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
    safe = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key)
    message = b"<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>"
    query, body = FakeWeChat(encoding_aes_key=key).push(message)
    ciphertext = body.split(b"<Encrypt><![CDATA[")[1].split(b"]]>")[0]
    for envelope in (
        b"<Encrypt>" + ciphertext + b"</Encrypt>",
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;<Encrypt>\n  '
        + ciphertext
        + b"\n</Encrypt>",
        b"<xml>" + b"<a/>" * 10_000 + b"<Encrypt><![CDATA[ " + ciphertext + b" ]]></Encrypt>",
    ):
        assert safe.parse(query, envelope).msg_type == "event"


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAGMENTS = [
    "<xml>",
    "</xml>",
    "<A>",
    "</A>",
    "<B x='1'>",
    "</B>",
    "<![CDATA[",
    "]]>",
    "<!DOCTYPE xml [",
    "<!DOCTYPE xml>",
    "]>",
    '<!ENTITY a "&#77;ARK_X">',
    '<!ENTITY b "&a;&a;&a;&a;">',
    "<!ENTITY % p \"<!ENTITY c 'MARK_Y'>\">",
    "%p;",
    '<!ENTITY e SYSTEM "file:///etc/passwd">',
    '<!ENTITY f SYSTEM "http://127.0.0.1:9/">',
    "&a;",
    "&b;",
    "&c;",
    "&e;",
    "&f;",
    "&lt;",
    "&#x41;",
    "&#0;",
    '<?xml version="1.0"?>',
    '<?xml version="1.0" encoding="UTF-16"?>',
    "<!-- c -->",
    "<?pi x?>",
    '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>',
    "text",
    "中文",
    "\x00",
    " ",
    "\n",
]


def _assert_safe_result(fields: dict[str, str]) -> None:
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    joined = "".join(fields.values())
    assert "MARK_X" not in joined  # entity expansion never happens
    assert "MARK_Y" not in joined
    assert "root:" not in joined  # /etc/passwd never read


class _Tree(xml.sax.handler.ContentHandler):
    """Elements from SAX events: tags exactly as written (no namespace processing, as ours)."""

    def __init__(self) -> None:
        super().__init__()
        self.root: Element | None = None
        self.open: list[Element] = []

    def startElement(self, name: str, attrs: object) -> None:
        element = Element(name)
        element.text = ""
        if self.open:
            self.open[-1].append(element)
        else:
            self.root = element
        self.open.append(element)

    def endElement(self, name: str) -> None:
        self.open.pop()

    def characters(self, content: str) -> None:
        self.open[-1].text = (self.open[-1].text or "") + content


def _reference_fields(body: bytes) -> dict[str, str] | type[CallbackError]:
    """What the hardened parser must give, by defusedxml (forbid_dtd): fields or the error."""
    tree = _Tree()
    try:
        DefusedSax.parseString(body, tree, forbid_dtd=True)
    except DefusedXmlException:
        return HostileXMLError
    except (xml.sax.SAXException, ValueError, LookupError):
        return XMLParseError
    root = tree.root
    assert root is not None
    if root.tag != "xml":
        return XMLParseError
    elements = list(root.iter())
    if len(elements) > MAX_XML_ELEMENTS or _depth(root) > MAX_XML_DEPTH:
        return XMLLimitError
    fields: dict[str, str] = {}
    _reference_flatten(root, "", fields)
    return fields


def _depth(element: Element) -> int:
    return 1 + max((_depth(child) for child in element), default=0)


def _parsed(body: bytes, **options: int) -> dict[str, str] | CallbackError:
    return _outcome(lambda: parse_fields(body, **options))


def _assert_parsed_as_the_reference(body: bytes) -> None:
    expected, got = _reference_fields(body), _parsed(body)
    if isinstance(expected, dict):
        assert got == expected
        _assert_safe_result(expected)
    else:
        assert type(got) is expected, f"{got!r}: expected {expected.__name__}"


@FUZZ
@given(st.binary(max_size=3000), st.integers(1, 4000))
def test_fuzz_arbitrary_bytes(body: bytes, limit: int) -> None:
    if len(body) > limit:
        error = _parsed(body, max_size=limit)
        assert isinstance(error, BodyTooLargeError)
        assert (error.size, error.limit) == (len(body), limit)
        return
    _assert_parsed_as_the_reference(body)


#: Pieces that make a well-formed ``<xml>`` document, mostly; the fragments above break it.
WELL_FORMED = [
    "<A>1</A>",
    "<B x='1'>two</B>",
    "<A><A>nested</A><C/></A>",
    "<Item><Id>1</Id></Item>",
    "<Item><Id>2</Id></Item>",
    "<D><![CDATA[<c>&d;]]></D>",
    "<E>&lt;&amp;&#x4e2d;</E>",
    "<F>mixed<G>g</G>tail</F>",
    "<!-- c -->",
    "<?pi x?>",
    "text",
    "\n",
]

_DOCUMENTS = st.tuples(
    st.sampled_from(["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-8"?>\n']),
    st.lists(st.sampled_from(WELL_FORMED) | st.sampled_from(FRAGMENTS), max_size=12),
).map(lambda parts: parts[0] + "<xml>" + "".join(parts[1]) + "</xml>")


@FUZZ
@given(
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=40).map("".join)
    | _DOCUMENTS,
    st.sampled_from(["utf-8", "utf-16", "latin-1"]),
)
def test_fuzz_hostile_fragments(text: str, encoding: str) -> None:
    _assert_parsed_as_the_reference(text.encode(encoding, errors="replace"))


def _unsigned_refusal(handler: CallbackHandler, query: dict[str, str], body: bytes) -> type:
    """The error a push without a valid signature gets, in the order the checks run."""
    encrypt_type = query.get("encrypt_type", "raw")
    if encrypt_type == "aes" and handler.safe_mode:
        return SignatureError if b"<Encrypt>" in body else MalformedCallbackError
    if encrypt_type not in ("", "raw", "aes"):
        return MalformedCallbackError
    if encrypt_type != "aes" and not handler.accepts_plaintext:
        return PlaintextPushError
    return SignatureError


@FUZZ
@given(
    st.binary(max_size=2000)
    | st.binary(max_size=200).map(lambda b: b"<Encrypt>QUJD</Encrypt>" + b),
    st.dictionaries(
        st.sampled_from(["signature", "msg_signature", "timestamp", "nonce", "encrypt_type", "x"]),
        st.text(max_size=30) | st.sampled_from(["aes", "raw", "", "1700000000"]),
    ),
)
def test_fuzz_the_handler(body: bytes, query: dict[str, str]) -> None:
    # Random queries never carry a valid signature: nothing is ever parsed, and the refusal
    # is the one the order of the checks gives.
    key = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
    for handler in (
        CallbackHandler(token=TOKEN, appid=APPID),
        CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key, timestamp_window=60),
    ):
        with pytest.raises(CallbackError) as info:
            handler.parse(query, body)
        assert type(info.value) is _unsigned_refusal(handler, query, body), info.value


PUSH_TAGS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId"]
PUSH_TAGS += ["Event", "KfAccount", "PicUrl", "MediaId", "Encrypt", "x"]
_PUSH_FIELDS = st.dictionaries(
    st.sampled_from(PUSH_TAGS),
    st.sampled_from(["text", "image", "event", "kf_create_session", "1700000000", "", " 7 "])
    | st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8),
    max_size=7,
)
_PUSHES = (
    st.binary(max_size=1500)
    | _PUSH_FIELDS.map(push_xml)
    | st.tuples(_PUSH_FIELDS.map(push_xml), st.integers(0, 200)).map(
        lambda p: p[0][: -p[1] or None]
    )
    | _DOCUMENTS.map(str.encode)
)


@FUZZ
@given(st.sampled_from(["plain", "aes"]), _PUSHES)
def test_fuzz_authenticated_bodies(mode: str, body: bytes) -> None:
    # Correctly signed (and encrypted) garbage: everything past authentication is fuzzed, and
    # the push is what its fields say, or the parser's refusal.
    key = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG" if mode == "aes" else None
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key)
    fake = FakeWeChat(encoding_aes_key=key)
    expected = _outcome(lambda: incoming_from_fields(parse_fields(body), encrypted=bool(key)))
    got = _outcome(lambda: handler.parse(*fake.push(body)))
    if isinstance(expected, CallbackError):
        assert type(got) is type(expected)
        assert str(got) == str(expected)
    else:
        assert got == expected


def _outcome(call: Callable[[], T]) -> T | CallbackError:
    try:
        return call()
    except CallbackError as exc:  # anything else fails the test
        return exc


# --------------------------------------------------------------------------- differential

TAGS = st.sampled_from(["A", "B", "item", "MsgType", "x.y", "_z", "Kf-1", "中"])
TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Cn"]) | st.sampled_from("\n\t"),
    max_size=12,
)


def _tree(depth: int) -> st.SearchStrategy[Element]:
    def leaf(tag: str, text: str) -> Element:
        element = Element(tag)
        element.text = text
        return element

    leaves = st.builds(leaf, TAGS, TEXT)
    if depth == 0:
        return leaves

    def branch(tag: str, children: list[Element]) -> Element:
        element = Element(tag)
        element.extend(children)
        return element

    return leaves | st.builds(branch, TAGS, st.lists(_tree(depth - 1), min_size=1, max_size=4))


def _serialize(element: Element, cdata: bool) -> str:
    if len(element):
        inner = "".join(_serialize(child, cdata) for child in element)
    elif cdata:
        inner = "<![CDATA[" + (element.text or "").replace("]]>", "]]]]><![CDATA[>") + "]]>"
    else:
        text = element.text or ""
        inner = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{element.tag}>{inner}</{element.tag}>"


def _reference_flatten(element: Element, prefix: str, into: dict[str, str]) -> None:
    counts = Counter(child.tag for child in element)
    index: Counter[str] = Counter()
    for child in element:
        name = child.tag
        if counts[name] > 1:
            name = f"{name}[{index[child.tag]}]"
            index[child.tag] += 1
        if len(child):
            _reference_flatten(child, f"{prefix}{name}/", into)
        else:
            into[prefix + name] = child.text or ""


@settings(max_examples=150, deadline=None)
@given(st.lists(_tree(3), max_size=5), st.booleans())
def test_same_fields_as_defusedxml(children: list[Element], cdata: bool) -> None:
    body = ("<xml>" + "".join(_serialize(c, cdata) for c in children) + "</xml>").encode()
    expected: dict[str, str] = {}
    _reference_flatten(DefusedET.fromstring(body, forbid_dtd=True), "", expected)
    assert parse_fields(body) == expected


# The flat fast path (one regular expression per element, no expat) must always give what
# expat gives, or step aside (None) and let expat decide.
FLAT_TEXT = st.lists(
    st.characters(codec="utf-8")
    | st.sampled_from(["]]>", "]]", "]", "&amp;", "&#x41;", "&", "<", ">", "\r\n", "\r", "\x00"]),
    max_size=6,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(TAGS, FLAT_TEXT, st.booleans()), max_size=8),
    st.sampled_from(["", " ", "\n", "\t", " \n  ", "\r\n"]),
    st.sampled_from(["", "\n", " "]),
)
def test_the_flat_fast_path_agrees_with_expat(
    children: list[tuple[str, str, bool]], between: str, after: str
) -> None:
    inner = between.join(
        f"<{tag}>" + (f"<![CDATA[{text}]]>" if cdata else text) + f"</{tag}>"
        for tag, text, cdata in children
    )
    body = f"<xml>{between}{inner}{between}</xml>{after}".encode()
    fast = _flat_fields(body)
    try:
        slow: dict[str, str] | None = _parse_with_expat(body)
    except XMLParseError:
        slow = None
    if fast is not None:
        assert fast == slow
    assert parse_fields(body) == slow if slow is not None else fast is None


def test_the_flat_fast_path_is_taken_for_real_pushes() -> None:
    body = text_push("你好 a<b & c]]", msg_id=7)
    assert _flat_fields(body) == _parse_with_expat(body)
    assert _flat_fields(b"<xml>\n<A>1</A>\n<B><![CDATA[x]]></B>\n</xml>\n") == {"A": "1", "B": "x"}
    for stepped_aside in (
        b"<xml><A>1</A><A>2</A></xml>",  # repeated: numbered by expat
        b"<xml><G><A>1</A></G></xml>",  # nested
        b"<xml><A>a &amp; b</A></xml>",  # a reference
        b"<xml><A>1\r\n</A></xml>",  # line ends expat normalises
        b'<?xml version="1.0"?><xml><A>1</A></xml>',
        b"<xml><A x='1'>1</A></xml>",
        b"<xml><A>\x01</A></xml>",
    ):
        assert _flat_fields(stepped_aside) is None


# --------------------------------------------------------------------------- limits and texts


def test_a_flat_document_at_the_element_limit() -> None:
    # The root counts: MAX_XML_ELEMENTS - 1 leaves fit, one more does not, on either path.
    leaves = [f"<T{n}>v</T{n}>" for n in range(MAX_XML_ELEMENTS)]
    fits = ("<xml>" + "".join(leaves[:-1]) + "</xml>").encode()
    assert len(parse_fields(fits)) == MAX_XML_ELEMENTS - 1
    assert _flat_fields(fits) is not None  # the fast path took it
    with pytest.raises(XMLLimitError) as info:
        parse_fields(("<xml>" + "".join(leaves) + "</xml>").encode())
    assert (info.value.kind, info.value.limit) == ("elements", MAX_XML_ELEMENTS)
    assert str(info.value) == "XML with more than 1024 elements (WeChat's pushes hold far fewer)"


def test_limit_and_parse_errors_say_which() -> None:
    deep = ("<xml>" + "<A>" * MAX_XML_DEPTH + "</A>" * MAX_XML_DEPTH + "</xml>").encode()
    with pytest.raises(XMLLimitError) as info:
        parse_fields(deep)
    assert (info.value.kind, info.value.limit) == ("depth", MAX_XML_DEPTH)
    assert str(info.value) == "XML nested deeper than 16 elements"
    fits = "<xml>" + "<A>" * (MAX_XML_DEPTH - 1) + "x" + "</A>" * (MAX_XML_DEPTH - 1) + "</xml>"
    assert parse_fields(fits.encode()) == {"A/" * (MAX_XML_DEPTH - 2) + "A": "x"}
    root = "R" * 50
    with pytest.raises(XMLParseError) as info:
        parse_fields(f"<{root}/>".encode())
    assert str(info.value) == f"root element is <{root[:40]}>, not <xml>"
    with pytest.raises(HostileXMLError) as info:
        parse_fields(b"<!DOCTYPE xml><xml/>")
    assert str(info.value) == "XML with a DOCTYPE is refused (WeChat never sends one)"
    with pytest.raises(XMLParseError) as info:
        parse_fields(b"<xml><A></xml>")
    assert str(info.value) == "mismatched tag (line 1, column 10)"


def test_long_text_arrives_whole() -> None:
    # expat hands text over in pieces past its buffer: every piece is kept.
    text = "a" * 20_000 + "&" + "b" * 20_000
    body = f"<xml><A x='1'>{text.replace('&', '&amp;')}</A></xml>".encode()
    assert parse_fields(body, max_size=100_000) == {"A": text}


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (b"<xml><Encrypt><![CDATA[QUJD]]></Encrypt></xml>", ["QUJD"]),
        (b"<xml><Encrypt>\n QUJD= \n</Encrypt></xml>", ["QUJD="]),
        (b"<xml><Encrypt>QUJD</Encrypt><Encrypt>REVG</Encrypt></xml>", ["QUJD", "REVG"]),
        (b"<Encrypt><![CDATA[QUJD]]></Encrypt><Encrypt>REVG</Encrypt>", ["QUJD", "REVG"]),
        (b"<Encrypt>QUJD</Encrypt><Encrypt><![CDATA[REVG]]></Encrypt>", ["QUJD", "REVG"]),
        (b"<Encrypt>a+/=</Encrypt><Encrypt>not base64!</Encrypt>", ["a+/="]),
        (b"<Encrypt>A</Encrypt>" * 4, ["A"] * 4),
    ],
)
def test_encrypt_candidates_in_order(body: bytes, found: list[str]) -> None:
    assert encrypt_candidates(body) == found


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"<xml><Content>hi</Content></xml>",
            "the encrypted push has no <Encrypt> element holding base64",
        ),
        (
            b"<Encrypt>not base64!</Encrypt>",
            "the encrypted push has no <Encrypt> element holding base64",
        ),
        (b"<Encrypt>A</Encrypt>" * 5, "the encrypted push has more than 4 <Encrypt> elements"),
    ],
)
def test_encrypt_candidates_refusals(body: bytes, message: str) -> None:
    with pytest.raises(MalformedCallbackError) as info:
        encrypt_candidates(body)
    assert str(info.value) == message


# --------------------------------------------------------------------------- building


def test_build_exact_bytes() -> None:
    built = build_xml(
        {
            "ToUserName": "oUser",
            "CreateTime": 1700000000,
            "MsgType": "transfer_customer_service",
            "TransInfo": {"KfAccount": "kf1@wx"},
            "Content": "a]]>b",
        }
    )
    assert built == (
        b"<xml><ToUserName><![CDATA[oUser]]></ToUserName><CreateTime>1700000000</CreateTime>"
        b"<MsgType><![CDATA[transfer_customer_service]]></MsgType><TransInfo><KfAccount>"
        b"<![CDATA[kf1@wx]]></KfAccount></TransInfo><Content><![CDATA[a]]]]><![CDATA[>b]]>"
        b"</Content></xml>"
    )


@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), TEXT))
def test_built_text_parses_back_identically(fields: dict[str, str]) -> None:
    fields = {tag: text + "]]>" for tag, text in fields.items()}
    assert parse_fields(build_xml(fields)) == fields


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"A": "\x00"}, ValueError, "cannot carry"),
        ({"A": "\ufffe"}, ValueError, "cannot carry"),
        ({"A": "\ud800"}, ValueError, "cannot carry"),
        ({"bad tag": "x"}, ValueError, "not an XML tag"),
        ({"<A>": "x"}, ValueError, "not an XML tag"),
        ({"A": True}, TypeError, "bool"),
    ],
)
def test_build_refuses_what_xml_cannot_carry(
    fields: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build_xml(fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("tab\tnewline\n", True),
        ("中文 😀", True),
        ("\x01", False),
        ("\x7f", True),
        ("\uffff", False),
    ],
)
def test_is_xml_text(text: str, ok: bool) -> None:
    assert is_xml_text(text) is ok

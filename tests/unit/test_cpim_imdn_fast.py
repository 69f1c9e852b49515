"""The IMDN fast path (regexes) must decide exactly as the ElementTree parser does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivegmc.cpim.imdn import _fast_imdn, _parse_imdn_tree, build_imdn, parse_imdn
from fivegmc.sip.errors import RemoteProtocolError

NS = "urn:ietf:params:xml:ns:imdn"
DECLS = ["", '<?xml version="1.0" encoding="UTF-8"?>\n', '<?xml version="1.0"?>',
         '<?xml version="1.0" encoding="utf-8"?>', ' <?xml version="1.0"?>',
         '<?xml version="1.1"?>', '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>']
ROOTS = [f'<imdn xmlns="{NS}">', f'<imdn xmlns="{NS}" >', f"<imdn xmlns='{NS}'>",
         f'<imdn xmlns="{NS}" xmlns:x="urn:x">', f'<i:imdn xmlns:i="{NS}">',
         '<imdn xmlns="urn:other">', f'<imdn xmlns="{NS}" a="1">', "<imdn>"]
GAPS = st.sampled_from(["", " ", "\n", "\r\n  ", "\t", "\x1c", "\u00a0", "x", "<!-- c -->",
                        "<x:y xmlns:x='urn:x'/>", "&amp;"])
TEXT = st.one_of(
    st.from_regex(r"[A-Za-z0-9:@+.\-]{1,30}", fullmatch=True),
    st.text(max_size=12),
    st.sampled_from(["  id  ", "", " ", "a&amp;b", "a<b", "a]]>b", "\u00e9t\u00e9", "a\tb"]),
)
NAMES = st.sampled_from(["message-id", "datetime", "recipient-uri", "original-recipient-uri",
                         "other"])
KINDS = st.sampled_from(["delivery-notification", "display-notification",
                         "processing-notification"])
STATUSES = st.sampled_from(["delivered", "failed", "forbidden", "error", "displayed",
                            "processed", "delivered /", "delivered  "])


GOOD_GAP = st.sampled_from(["", "", "", " ", "\n", "\r\n  ", "\t"])
GOOD_TEXT = st.from_regex(r"[A-Za-z0-9:@+.\-]{1,30}", fullmatch=True)
PAIRS = st.sampled_from([("delivery-notification", "delivered"),
                         ("delivery-notification", "failed"),
                         ("delivery-notification", "forbidden"),
                         ("display-notification", "displayed"),
                         ("display-notification", "error")])


@st.composite
def documents(draw: st.DrawFn) -> str:
    """Mostly valid documents (the fast path's shape), each with a few random defects."""
    bad = draw(st.integers(0, 3))  # how many parts take a hostile variant

    def pick(good: st.SearchStrategy[str], hostile: st.SearchStrategy[str]) -> str:
        return draw(hostile) if bad and draw(st.integers(0, 5)) == 0 else draw(good)

    kind, status = draw(PAIRS)
    children = [
        ("message-id", pick(GOOD_TEXT, TEXT)),
        ("datetime", pick(GOOD_TEXT, TEXT)),
    ]
    if draw(st.booleans()):
        children.append(("original-recipient-uri", pick(GOOD_TEXT, TEXT)))
    if bad and draw(st.booleans()):
        children.append((draw(NAMES), draw(TEXT)))  # a duplicate or foreign element
    rendered = [f"<{name}>{text}</{name}>" for name, text in children]
    notifications = 1 if not bad else draw(st.integers(0, 2))
    for _ in range(notifications):
        k = pick(st.just(kind), KINDS)
        v = pick(st.just(status), STATUSES)
        rendered.append(f"<{k}>{pick(GOOD_GAP, GAPS)}<status>{pick(GOOD_GAP, GAPS)}<{v}/>"
                        f"{pick(GOOD_GAP, GAPS)}</status>{pick(GOOD_GAP, GAPS)}</{k}>")
    order = draw(st.permutations(rendered))
    root = pick(st.sampled_from(ROOTS[:2]), st.sampled_from(ROOTS))
    parts = [pick(st.sampled_from(DECLS[:4]), st.sampled_from(DECLS)), pick(GOOD_GAP, GAPS),
             root]
    for child in order:
        parts += [pick(GOOD_GAP, GAPS), child]
    close = "</i:imdn>" if root.startswith("<i:") else "</imdn>"
    parts += [pick(GOOD_GAP, GAPS), close,
              pick(GOOD_GAP, st.sampled_from(["<!-- end -->", "x", "\x1c"]))]
    return "".join(parts)


def _outcome(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except RemoteProtocolError as exc:
        return ("error", type(exc))


@settings(max_examples=1500)
@given(documents())
def test_fast_path_agrees_with_elementtree(text: str) -> None:
    reference = _outcome(_parse_imdn_tree, text)
    assert _outcome(lambda t: parse_imdn(t.encode()), text) == reference
    fast = _fast_imdn(text)
    if fast is not None:
        assert fast == reference


@given(st.text(max_size=40).filter(lambda s: s == s.strip() and s),
       st.text(max_size=40).filter(lambda s: s == s.strip() and s),
       st.sampled_from([("delivery", "delivered"), ("delivery", "failed"),
                        ("display", "displayed"), ("delivery", "forbidden")]),
       st.one_of(st.none(), st.just("sip:+8613800000001@ims.example")))
def test_built_documents_round_trip(mid: str, when: str, kind_status: tuple[str, str],
                                    original: str | None) -> None:
    kind, status = kind_status
    try:
        doc = build_imdn(message_id=mid, datetime=when, kind=kind,  # type: ignore[arg-type]
                         status=status, original_recipient=original)  # type: ignore[arg-type]
    except Exception:
        return  # characters XML cannot carry: the builder refuses them
    parsed = parse_imdn(doc)
    assert parsed == _parse_imdn_tree(doc.decode())
    assert (parsed.message_id, parsed.datetime, parsed.kind, parsed.status) == (
        mid.strip(), when.strip(), kind, status)


def test_typical_ue_report_takes_the_fast_path() -> None:
    doc = build_imdn(message_id="Msg-1", datetime="2026-11-21T10:00:00Z", kind="delivery",
                     status="delivered").decode()
    fast = _fast_imdn(doc)
    assert fast is not None and fast.status == "delivered" and fast.message_id == "Msg-1"


@pytest.mark.parametrize("doc", [
    f'<imdn xmlns="{NS}"><message-id>a</message-id><message-id>b</message-id>'
    "<datetime>t</datetime><delivery-notification><status><delivered/></status>"
    "</delivery-notification></imdn>",
    f'<imdn xmlns="{NS}"><datetime>t</datetime><delivery-notification><status>'
    "<delivered/></status></delivery-notification></imdn>",
    f'<imdn xmlns="{NS}"><message-id>a</message-id><datetime>t</datetime>'
    "<display-notification><status><delivered/></status></display-notification></imdn>",
])
def test_bad_documents_still_rejected(doc: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_imdn(doc.encode())

"""Small builders for the registrar, routing and proxy-core unit tests: SIP requests and
responses as bytes or parsed objects, the lab profiles, bindings, and digest credentials.

Everything here is pure: no sockets, no clocks. Time is whatever number a test passes as ``now``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from fivegmc.config import Profile, load_profile
from fivegmc.core.registrar import Flow, Registrar
from fivegmc.core.subscribers import SubscriberDirectory
from fivegmc.sip import digest
from fivegmc.sip.message import Request, Response
from fivegmc.sip.parser import parse_message
from fivegmc.sip.uri import NameAddr, parse_name_addr

DOMAIN = "ims.mnc000.mcc460.3gppnetwork.org"
REPO = Path(__file__).resolve().parents[2]
AUTH_PROFILE = REPO / "profiles" / "lab-auth.toml"

#: Numbers of the lab profile: RCS range, SMS-only range, and one in neither.
ALICE = "+8613800000001"
BOB = "+8613800000002"
CAROL = "+8613800000003"
SMS_USER = "+8613900000001"
STRANGER = "+8613700000001"

ICSI_MSG = '+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'
IARI_FTHTTP = '+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp"'
RCS_TAGS = f"{ICSI_MSG};{IARI_FTHTTP}"

#: The node's own address as it appears in its Via (the proxy's ``local_via``).
NODE_HOST = "127.0.0.1"
NODE_PORT = 5060
NODE_SENT_BY = f"{NODE_HOST}:{NODE_PORT}"

UDP_A = Flow("udp", "192.0.2.1", 5060)  # Alice's handset
UDP_B = Flow("udp", "192.0.2.2", 5060)  # Bob's first handset
UDP_B2 = Flow("udp", "192.0.2.3", 5060)  # Bob's second handset
TCP_A = Flow("tcp", "192.0.2.1", 40001)
TCP_B = Flow("tcp", "192.0.2.2", 40002)

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A short deterministic-looking unique token (tags, Call-IDs, branches)."""
    return f"{prefix}{next(_counter):06d}"


def lab_profile(*overrides: str) -> Profile:
    """The embedded lab profile (auth off)."""
    return load_profile(None, overrides)


def auth_profile(*overrides: str) -> Profile:
    """profiles/lab-auth.toml: digest auth on, SHA-256 then MD5, passwords ``lab-{number}``."""
    return load_profile(AUTH_PROFILE, overrides)


def directory_for(profile: Profile) -> SubscriberDirectory:
    return SubscriberDirectory(profile.operator.number_ranges)


def registrar_for(profile: Profile) -> Registrar:
    return Registrar(profile.registrar)


def aor_uri(number: str, domain: str = DOMAIN) -> str:
    return f"sip:{number}@{domain}"


def contact_for(flow: Flow, number: str, *, tags: str = RCS_TAGS, params: str = "") -> str:
    """A Contact value for a UE at ``flow`` (transport param when not UDP)."""
    transport = "" if flow.transport == "udp" else f";transport={flow.transport}"
    out = f"<sip:{number}@{flow.host}:{flow.port}{transport}>"
    if tags:
        out += f";{tags}"
    if params:
        out += f";{params}"
    return out


def name_addr(text: str) -> NameAddr:
    return parse_name_addr(text)


def request_bytes(
    method: str,
    uri: str,
    *,
    frm: str = ALICE,
    to: str | None = None,
    flow: Flow = UDP_A,
    branch: str | None = None,
    call_id: str | None = None,
    cseq: int = 1,
    from_tag: str | None = None,
    max_forwards: int | None = 70,
    vias: tuple[str, ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    content_length: bool = True,
    rport: bool = False,
) -> bytes:
    """A request as a UE at ``flow`` would send it. ``vias`` are put above the UE's own Via
    (to fake a request that already passed through proxies); ``to`` defaults to the R-URI."""
    branch = branch or unique("z9hG4bKue")
    proto = flow.transport.upper()
    lines = [f"{method} {uri} SIP/2.0"]
    lines += [f"Via: {v}" for v in vias]
    rp = ";rport" if rport else ""
    lines.append(f"Via: SIP/2.0/{proto} {flow.host}:{flow.port};branch={branch}{rp}")
    if max_forwards is not None:
        lines.append(f"Max-Forwards: {max_forwards}")
    frm_uri = frm if ":" in frm else aor_uri(frm)
    lines.append(f"From: <{frm_uri}>;tag={from_tag or unique('ft')}")
    lines.append(f"To: <{to or uri}>")
    lines.append(f"Call-ID: {call_id or unique('cid')}@test")
    lines.append(f"CSeq: {cseq} {method}")
    lines += [f"{name}: {value}" for name, value in headers]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def request(method: str, uri: str, **kw: Any) -> Request:
    """Parsed form of :func:`request_bytes` (for the router, which takes parsed requests)."""
    msg = parse_message(request_bytes(method, uri, **kw))
    assert isinstance(msg, Request)
    return msg


def register_bytes(
    number: str,
    *,
    flow: Flow = UDP_A,
    contacts: tuple[str, ...] | None = None,
    expires: int | None = 3600,
    call_id: str | None = None,
    cseq: int = 1,
    headers: tuple[tuple[str, str], ...] = (),
    domain: str = DOMAIN,
    branch: str | None = None,
) -> bytes:
    """A REGISTER for ``number`` at ``domain``, by default with one RCS Contact at ``flow``."""
    if contacts is None:
        contacts = (contact_for(flow, number),)
    extra = [("Contact", c) for c in contacts]
    if expires is not None:
        extra.append(("Expires", str(expires)))
    return request_bytes(
        "REGISTER", f"sip:{domain}", frm=aor_uri(number, domain), to=aor_uri(number, domain),
        flow=flow, call_id=call_id, cseq=cseq, headers=(*extra, *headers), branch=branch,
    )


def register(number: str, **kw: Any) -> Request:
    msg = parse_message(register_bytes(number, **kw))
    assert isinstance(msg, Request)
    return msg


CPIM_BODY = (
    b"From: <sip:+8613800000001@ims.mnc000.mcc460.3gppnetwork.org>\r\n"
    b"To: <sip:+8613800000002@ims.mnc000.mcc460.3gppnetwork.org>\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\n"
    b"imdn.Message-ID: msg-0001\r\n"
    b"imdn.Disposition-Notification: positive-delivery, display\r\n"
    b"\r\n"
    b"Content-Type: text/plain;charset=UTF-8\r\n"
    b"Content-Length: 12\r\n"
    b"\r\n"
    b"Hello \xe4\xbd\xa0\xe5\xa5\xbd"
)


def message_bytes(to: str, *, domain: str = DOMAIN, body: bytes = CPIM_BODY,
                  content_type: str | None = "message/cpim", **kw: Any) -> bytes:
    """A pager MESSAGE to ``to`` (a number) carrying a CPIM body."""
    headers: tuple[tuple[str, str], ...] = tuple(kw.pop("headers", ()))
    if content_type is not None:
        headers = (("Content-Type", content_type), *headers)
    return request_bytes("MESSAGE", aor_uri(to, domain), headers=headers, body=body,
                         **kw)


def message(to: str, **kw: Any) -> Request:
    msg = parse_message(message_bytes(to, **kw))
    assert isinstance(msg, Request)
    return msg


def options(to: str | None, *, domain: str = DOMAIN, **kw: Any) -> Request:
    """OPTIONS for a number (a capability query) or, with ``to=None``, for the node itself."""
    uri = f"sip:{domain}" if to is None else aor_uri(to, domain)
    headers: tuple[tuple[str, str], ...] = tuple(kw.pop("headers", ()))
    headers = (("Contact", contact_for(UDP_A, ALICE)), ("Accept", "application/sdp"), *headers)
    msg = parse_message(request_bytes("OPTIONS", uri, headers=headers, **kw))
    assert isinstance(msg, Request)
    return msg


def parse_request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request), data
    return msg


def parse_response(data: bytes) -> Response:
    msg = parse_message(data)
    assert isinstance(msg, Response), data
    return msg


def response_bytes(req: bytes, status: int, reason: str = "Whatever", *,
                   to_tag: str | None = "uas1",
                   headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> bytes:
    """A UAS's response to the request ``req`` (bytes as received by the UAS): every Via and
    From/To/Call-ID/CSeq copied in order, then ``headers``, then ``body``."""
    parsed = parse_request(req)
    lines = [f"SIP/2.0 {status} {reason}"]
    for name, value in parsed.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            lines.append(f"{name}: {value}")
        elif name == "To":
            lines.append(f"To: {value};tag={to_tag}" if to_tag else f"To: {value}")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def header_lines(data: bytes) -> list[str]:
    """The header lines of a message (start line excluded), as text."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return head.split("\r\n")[1:]


def body_of(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1]


# -- digest client side --------------------------------------------------------------------


def authorization(challenge_value: str, *, number: str, method: str, uri: str,
                  password: str | None = None, nc: str = "00000001",
                  cnonce: str = "0a4f113b") -> str:
    """The Authorization value a UE builds in answer to one challenge (qop=auth when offered)."""
    ch = digest.parse_challenge(challenge_value)
    qop = "auth" if "auth" in ch.qop else None
    response = digest.compute_response(
        algorithm=ch.algorithm, username=number, realm=ch.realm,
        password=password if password is not None else f"lab-{number}", method=method,
        uri=uri, nonce=ch.nonce, qop=qop, nc=nc if qop else None,
        cnonce=cnonce if qop else None,
    )
    creds = digest.Credentials(
        username=number, realm=ch.realm, nonce=ch.nonce, uri=uri, response=response,
        algorithm=ch.algorithm, qop=qop, nc=nc if qop else None,
        cnonce=cnonce if qop else None, opaque=ch.opaque,
    )
    return digest.format_credentials(creds)

"""The routing pipeline (sanity → auth → registrar → dispatch) on parsed requests, no sockets.

Each test states the request and the decision the 5GMC must take: a Reply (status and the headers
RFC 3261 requires with it), a Relay (targets, Max-Forwards) or an Absorb.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fivegmc.config import Profile, load_profile
from fivegmc.core.registrar import Flow
from fivegmc.core.routing import Absorb, Decision, Relay, Reply, Router, Store, loop_hash
from fivegmc.sip import digest
from fivegmc.sip.errors import RemoteProtocolError
from fivegmc.sip.message import Request

from .sipbuild import (
    ALICE,
    BOB,
    DOMAIN,
    ICSI_MSG,
    NODE_SENT_BY,
    SMS_USER,
    STRANGER,
    TCP_A,
    UDP_A,
    UDP_B,
    UDP_B2,
    auth_profile,
    authorization,
    contact_for,
    directory_for,
    lab_profile,
    message,
    name_addr,
    options,
    parse_request,
    register,
    registrar_for,
    request,
    request_bytes,
)

WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z: nonces carry wall-clock time


class Lab:
    """A router over a fresh registrar; ``wall`` is the wall clock nonces are stamped with."""

    def __init__(self, profile: Profile, *, auth: bool = False) -> None:
        self.registrar = registrar_for(profile)
        self.wall = WALL
        self.nonces = digest.NonceManager(b"unit-test-secret" * 2, profile.auth.nonce_ttl_s)
        self.router = Router(
            profile, self.registrar, directory_for(profile),
            local_sent_by=lambda: frozenset({NODE_SENT_BY}),
            nonces=self.nonces if auth else None, wall_clock=lambda: self.wall,
        )

    def route(self, req: Request, flow: Flow = UDP_A, now: float = 0.0) -> Decision:
        return self.router.route(req, flow, now)

    def reply(self, req: Request, flow: Flow = UDP_A, now: float = 0.0) -> Reply:
        d = self.route(req, flow, now)
        assert isinstance(d, Reply), d
        return d

    def online(self, number: str, flow: Flow, *, tags: str = ICSI_MSG, now: float = 0.0) -> None:
        """Register ``number`` straight in the registrar (auth is not what is tested here)."""
        out = self.registrar.register(
            number, [name_addr(contact_for(flow, number, tags=tags))], expires_header=3600,
            call_id=f"reg-{number}-{flow.host}-{flow.port}", cseq=1, flow=flow, now=now)
        assert out.status == 200


def header(reply: Reply, name: str) -> list[str]:
    return [v for n, v in reply.headers if n.lower() == name.lower()]


@pytest.fixture
def lab() -> Lab:
    return Lab(lab_profile())


@pytest.fixture
def auth_lab() -> Lab:
    return Lab(auth_profile(), auth=True)


# -- REGISTER ------------------------------------------------------------------------------------


def test_register_of_a_provisioned_number_is_200_with_its_binding(lab: Lab) -> None:
    rep = lab.reply(register(ALICE, expires=600))
    assert rep.status == 200
    (contact,) = header(rep, "Contact")
    assert contact.startswith(f"<sip:{ALICE}@192.0.2.1:5060>;+g.3gpp.icsi-ref=")
    assert contact.endswith(";expires=600")
    assert lab.registrar.binding_count == 1


def test_register_200_rewrites_the_expires_param_with_the_granted_time(lab: Lab) -> None:
    c = contact_for(UDP_A, ALICE, tags="", params="expires=99999")
    (contact,) = header(lab.reply(register(ALICE, contacts=(c,), expires=None)), "Contact")
    assert contact == f"<sip:{ALICE}@192.0.2.1:5060>;expires=7200"


@pytest.mark.parametrize("contact", [
    f"<sip:{ALICE}@192.0.2.1;expires=5>;expires=600",  # a URI parameter named expires
    f'<sip:{ALICE}@192.0.2.1>;+g.example="a;expires=3";expires=600',  # inside a quoted value
])
def test_register_200_contact_stays_well_formed(lab: Lab, contact: str) -> None:
    (value,) = header(lab.reply(register(ALICE, contacts=(contact,), expires=None)), "Contact")
    parsed = name_addr(value)
    assert parsed.param("expires") == "600"
    assert str(parsed.uri) == str(name_addr(contact).uri)


def test_register_200_lists_bindings_with_their_remaining_time(lab: Lab) -> None:
    lab.reply(register(ALICE, expires=600, call_id="x", cseq=1), now=0.0)
    rep = lab.reply(register(ALICE, contacts=(), expires=None, call_id="x", cseq=2), now=100.0)
    (contact,) = header(rep, "Contact")
    assert contact.endswith(";expires=500")


@pytest.mark.parametrize("number", [STRANGER, "+861380000000"])
def test_register_of_an_unknown_number_is_404(lab: Lab, number: str) -> None:
    assert lab.reply(register(number)).status == 404
    assert lab.registrar.binding_count == 0


def test_register_of_an_sms_only_number_is_accepted(lab: Lab) -> None:
    assert lab.reply(register(SMS_USER)).status == 200


def test_register_for_a_foreign_domain_is_404(lab: Lab) -> None:
    rep = lab.reply(register(ALICE, domain="ims.mnc001.mcc460.3gppnetwork.org"))
    assert rep.status == 404
    assert lab.registrar.binding_count == 0


def test_register_whose_to_is_in_another_domain_is_404(lab: Lab) -> None:
    foreign = f"sip:{ALICE}@evil.example"
    req = parse_request(request_bytes(
        "REGISTER", f"sip:{DOMAIN}", frm=foreign, to=foreign,
        headers=(("Contact", contact_for(UDP_A, ALICE)), ("Expires", "600"))))
    assert lab.reply(req).status == 404


def test_register_with_too_short_expires_is_423_with_min_expires(lab: Lab) -> None:
    rep = lab.reply(register(ALICE, expires=30))
    assert (rep.status, header(rep, "Min-Expires")) == (423, ["60"])


def test_register_wildcard_with_expires_zero_unregisters(lab: Lab) -> None:
    lab.reply(register(ALICE, call_id="w", cseq=1))
    rep = lab.reply(register(ALICE, contacts=("*",), expires=0, call_id="w", cseq=2))
    assert (rep.status, header(rep, "Contact")) == (200, [])
    assert lab.registrar.binding_count == 0


def test_register_wildcard_without_expires_zero_is_400(lab: Lab) -> None:
    assert lab.reply(register(ALICE, contacts=("*",), expires=3600)).status == 400


def test_register_wildcard_beside_another_contact_is_a_400_protocol_error(lab: Lab) -> None:
    req = register(ALICE, contacts=("*", contact_for(UDP_A, ALICE)), expires=0)
    with pytest.raises(RemoteProtocolError) as err:
        lab.route(req)
    assert err.value.status_hint == 400


def test_register_out_of_order_cseq_is_400(lab: Lab) -> None:
    assert lab.reply(register(ALICE, call_id="same", cseq=5)).status == 200
    assert lab.reply(register(ALICE, call_id="same", cseq=4)).status == 400
    assert lab.reply(register(ALICE, call_id="same", cseq=6)).status == 200


def test_register_with_an_unsupported_require_is_420(lab: Lab) -> None:
    rep = lab.reply(register(ALICE, headers=(("Require", "path, sec-agree"),)))
    assert (rep.status, header(rep, "Unsupported")) == (420, ["sec-agree"])
    assert lab.registrar.binding_count == 0


def test_register_requiring_supported_options_is_accepted(lab: Lab) -> None:
    assert lab.reply(register(ALICE, headers=(("Require", "outbound, gruu"),))).status == 200


def test_register_with_max_forwards_zero_is_still_answered(lab: Lab) -> None:
    req = parse_request(request_bytes(
        "REGISTER", f"sip:{DOMAIN}", max_forwards=0, to=f"sip:{ALICE}@{DOMAIN}",
        frm=f"sip:{ALICE}@{DOMAIN}", headers=(("Contact", contact_for(UDP_A, ALICE)),)))
    assert lab.reply(req).status == 200


# -- MESSAGE -------------------------------------------------------------------------------------


def test_message_to_a_registered_user_is_relayed_to_its_bindings(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    d = lab.route(message(BOB))
    assert isinstance(d, Relay)
    assert [b.flow for b in d.targets] == [UDP_B]
    assert d.max_forwards == 69


def test_message_without_max_forwards_is_relayed_with_70(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    d = lab.route(message(BOB, max_forwards=None))
    assert isinstance(d, Relay)
    assert d.max_forwards == 70


def test_message_with_max_forwards_one_is_relayed_with_zero(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    d = lab.route(message(BOB, max_forwards=1))
    assert isinstance(d, Relay)
    assert d.max_forwards == 0


def test_message_forks_to_every_binding_best_q_first(lab: Lab) -> None:
    lab.registrar.register(BOB, [name_addr(f"<sip:{BOB}@192.0.2.3>;q=0.5")],
                           expires_header=600, call_id="tablet", cseq=1, flow=UDP_B2, now=0.0)
    lab.online(BOB, UDP_B)
    d = lab.route(message(BOB))
    assert isinstance(d, Relay)
    assert [(b.flow, b.q) for b in d.targets] == [(UDP_B, 1.0), (UDP_B2, 0.5)]


def test_message_to_a_tel_uri_is_routed_by_number(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    req = request("MESSAGE", f"tel:{BOB}", headers=(("Content-Type", "text/plain"),),
                  body=b"hi")
    assert isinstance(lab.route(req), Relay)


def test_message_for_a_user_phone_uri_with_visual_separators_is_routed(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    req = request("MESSAGE", f"sip:+86-138-0000-0002@{DOMAIN};user=phone",
                  headers=(("Content-Type", "text/plain"),), body=b"hi")
    assert isinstance(lab.route(req), Relay)


def test_message_to_an_unregistered_rcs_user_is_stored(lab: Lab) -> None:
    assert lab.route(message(BOB)) == Store(BOB)  # store-and-forward (issue 3)


def test_message_to_an_unregistered_rcs_user_is_480_without_store_and_forward() -> None:
    lab = Lab(load_profile(None, ("messaging.store_and_forward=false",)))
    assert lab.reply(message(BOB)).status == 480


def test_message_to_a_user_whose_binding_expired_is_stored(lab: Lab) -> None:
    lab.online(BOB, UDP_B, now=0.0)
    assert lab.route(message(BOB), now=3600.0) == Store(BOB)


def test_message_to_an_sms_only_user_is_480(lab: Lab) -> None:
    lab.online(SMS_USER, UDP_B)  # even a registered SMS-only number gets no pager MESSAGE
    assert lab.reply(message(SMS_USER)).status == 480


def test_message_to_an_unknown_number_is_404(lab: Lab) -> None:
    assert lab.reply(message(STRANGER)).status == 404


def test_message_to_a_foreign_domain_is_404(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    assert lab.reply(message(BOB, domain="example.net")).status == 404


def test_message_to_the_node_address_counts_as_local(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    assert isinstance(lab.route(message(BOB, domain="127.0.0.1")), Relay)


@pytest.mark.parametrize("method", ["MESSAGE", "INVITE", "SUBSCRIBE", "FOO"])
def test_max_forwards_zero_is_483(lab: Lab, method: str) -> None:
    lab.online(BOB, UDP_B)
    req = request(method, f"sip:{BOB}@{DOMAIN}", max_forwards=0)
    assert lab.reply(req).status == 483


def test_options_with_max_forwards_zero_is_answered_not_483(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    assert lab.reply(options(BOB, max_forwards=0)).status == 200
    assert lab.reply(options(None, max_forwards=0)).status == 200


def test_unsupported_proxy_require_is_420_listing_the_unsupported_ones(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    req = message(BOB, headers=(("Proxy-Require", "path, foo"), ("Proxy-Require", "bar")))
    rep = lab.reply(req)
    assert rep.status == 420
    assert header(rep, "Unsupported") == ["foo, bar"]


def test_supported_proxy_require_is_relayed(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    assert isinstance(lab.route(message(BOB, headers=(("Proxy-Require", "gruu"),))), Relay)


def test_require_on_a_relayed_message_is_not_the_proxys_business(lab: Lab) -> None:
    # RFC 3261 §16.3: a proxy MUST NOT refuse a request because of Require (only the UAS does)
    lab.online(BOB, UDP_B)
    assert isinstance(lab.route(message(BOB, headers=(("Require", "foo"),))), Relay)


def test_unsupported_content_type_is_415_with_accept(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    rep = lab.reply(message(BOB, content_type="application/sdp", body=b"v=0\r\n"))
    assert rep.status == 415
    (accept,) = header(rep, "Accept")
    assert "message/cpim" in accept.split(", ")


@pytest.mark.parametrize("ctype", ["message/CPIM", "text/plain;charset=UTF-8",
                                   "application/vnd.gsma.botmessage.v1.0+json",
                                   "application/im-iscomposing+xml"])
def test_supported_content_types_are_relayed(lab: Lab, ctype: str) -> None:
    lab.online(BOB, UDP_B)
    assert isinstance(lab.route(message(BOB, content_type=ctype)), Relay)


def test_gzip_content_encoding_is_415_with_accept_encoding(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    rep = lab.reply(message(BOB, headers=(("Content-Encoding", "gzip"),)))
    assert (rep.status, header(rep, "Accept-Encoding")) == (415, ["identity"])


def test_a_body_without_content_type_is_400(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    assert lab.reply(message(BOB, content_type=None)).status == 400


@pytest.mark.parametrize("uri", ["mailto:bob@example.com", "urn:service:sos",
                                 "im:bob@example.com"])
def test_non_sip_non_tel_request_uri_is_416(lab: Lab, uri: str) -> None:
    assert lab.reply(request("MESSAGE", uri, to=f"sip:{BOB}@{DOMAIN}")).status == 416


@pytest.mark.parametrize("method", ["INVITE", "SUBSCRIBE", "PUBLISH", "BYE", "INFO"])
def test_known_but_unhandled_methods_are_405_with_allow(lab: Lab, method: str) -> None:
    rep = lab.reply(request(method, f"sip:{BOB}@{DOMAIN}"))
    assert rep.status == 405
    (allow,) = header(rep, "Allow")
    assert set(allow.split(", ")) == {"REGISTER", "MESSAGE", "OPTIONS", "ACK", "CANCEL"}


def test_unknown_method_is_501(lab: Lab) -> None:
    assert lab.reply(request("FROBNICATE", f"sip:{BOB}@{DOMAIN}")).status == 501


def test_cancel_without_a_transaction_is_481(lab: Lab) -> None:
    assert lab.reply(request("CANCEL", f"sip:{BOB}@{DOMAIN}")).status == 481


def test_ack_is_absorbed(lab: Lab) -> None:
    assert isinstance(lab.route(request("ACK", f"sip:{BOB}@{DOMAIN}")), Absorb)


def test_ack_with_max_forwards_zero_is_absorbed_too(lab: Lab) -> None:
    assert isinstance(lab.route(request("ACK", f"sip:{BOB}@{DOMAIN}", max_forwards=0)), Absorb)


def test_bad_max_forwards_is_a_400_protocol_error(lab: Lab) -> None:
    req = request("MESSAGE", f"sip:{BOB}@{DOMAIN}", max_forwards=None,
                  headers=(("Max-Forwards", "many"),))
    with pytest.raises(RemoteProtocolError) as err:
        lab.route(req)
    assert err.value.status_hint == 400


# -- loop detection (§16.3 step 4) ---------------------------------------------------------------


def _with_our_via(branch_for: Callable[[Request], str]) -> Request:
    """A MESSAGE that already passed this node once: our Via (below the sender's) with the
    branch ``branch_for`` computes from the request itself."""
    kw: dict[str, Any] = dict(frm=ALICE, call_id="loop@test", from_tag="lt", cseq=7,
              headers=(("Content-Type", "text/plain"),), body=b"x")
    probe = request("MESSAGE", f"sip:{BOB}@{DOMAIN}", **kw)
    our_via = f"SIP/2.0/UDP {NODE_SENT_BY};branch={branch_for(probe)}"
    return request("MESSAGE", f"sip:{BOB}@{DOMAIN}", vias=(our_via,), **kw)


def test_request_with_our_via_and_the_same_loop_hash_is_482(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    req = _with_our_via(lambda r: f"z9hG4bK{loop_hash(r)}.abc1")
    assert lab.reply(req, UDP_B).status == 482


def test_request_with_our_via_and_another_hash_is_a_spiral_and_routed(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    req = _with_our_via(lambda r: "z9hG4bK00000000.abc1")
    assert isinstance(lab.route(req, UDP_B), Relay)


def test_someone_elses_via_with_a_matching_hash_is_not_a_loop(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    kw: dict[str, Any] = dict(call_id="l2@test", from_tag="lt",
                              headers=(("Content-Type", "text/plain"),))
    probe = request("MESSAGE", f"sip:{BOB}@{DOMAIN}", **kw)
    other = f"SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK{loop_hash(probe)}.x"
    req = request("MESSAGE", f"sip:{BOB}@{DOMAIN}", vias=(other,), **kw)
    assert isinstance(lab.route(req), Relay)


def test_loop_hash_ignores_the_via_and_max_forwards_but_not_the_cseq() -> None:
    base: dict[str, Any] = dict(call_id="h@test", from_tag="ft", cseq=3)
    a = request("MESSAGE", f"sip:{BOB}@{DOMAIN}", **base)
    b = request("MESSAGE", f"sip:{BOB}@{DOMAIN}", max_forwards=12, flow=UDP_B,
                **base)
    c = request("MESSAGE", f"sip:{BOB}@{DOMAIN}", **{**base, "cseq": 4})
    assert loop_hash(a) == loop_hash(b) != loop_hash(c)
    assert len(loop_hash(a)) == 8


# -- OPTIONS: capability discovery (protocols.md §4) ---------------------------------------------


def test_options_for_an_online_rcs_user_is_200_with_its_rcs_tags(lab: Lab) -> None:
    lab.online(BOB, UDP_B, tags=f'{ICSI_MSG};+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service'
                                '.ims.icsi.mmtel";+g.gsma.rcs.botversion="#=1"')
    rep = lab.reply(options(BOB))
    assert rep.status == 200
    (contact,) = header(rep, "Contact")
    assert contact == (f'<sip:{BOB}@{DOMAIN};user=phone>;{ICSI_MSG};'
                       '+g.gsma.rcs.botversion="#=1"')


def test_options_for_an_sms_only_user_is_200_without_rcs_tags(lab: Lab) -> None:
    rep = lab.reply(options(SMS_USER))
    assert rep.status == 200
    (contact,) = header(rep, "Contact")
    assert "+g." not in contact


def test_options_for_an_offline_rcs_user_is_480(lab: Lab) -> None:
    assert lab.reply(options(BOB)).status == 480


def test_options_for_an_unknown_number_is_404(lab: Lab) -> None:
    assert lab.reply(options(STRANGER)).status == 404


def test_options_for_a_number_in_a_foreign_domain_is_404(lab: Lab) -> None:
    assert lab.reply(options(BOB, domain="example.net")).status == 404


def test_options_to_the_node_itself_is_200_with_allow_accept_supported(lab: Lab) -> None:
    rep = lab.reply(options(None))
    assert rep.status == 200
    assert header(rep, "Contact") == []
    (allow,) = header(rep, "Allow")
    assert "MESSAGE" in allow and "OPTIONS" in allow
    assert "message/cpim" in header(rep, "Accept")[0]
    assert header(rep, "Supported") == ["gruu, outbound, path, recipient-list-message"]


def test_options_to_the_node_ip_is_200(lab: Lab) -> None:
    assert lab.reply(options(None, domain="127.0.0.1")).status == 200


def test_options_to_another_host_without_user_is_404(lab: Lab) -> None:
    assert lab.reply(options(None, domain="example.net")).status == 404


def test_options_with_an_unsupported_require_is_420(lab: Lab) -> None:
    lab.online(BOB, UDP_B)
    rep = lab.reply(options(BOB, headers=(("Require", "100rel"),)))
    assert (rep.status, header(rep, "Unsupported")) == (420, ["100rel"])
    assert lab.reply(options(None, headers=(("Require", "foo"),))).status == 420


# -- digest authentication (lab-auth.toml) -------------------------------------------------------


REG_URI = f"sip:{DOMAIN}"


def _challenges(rep: Reply, name: str) -> list[digest.Challenge]:
    return [digest.parse_challenge(v) for v in header(rep, name)]


def _register_with(lab: Lab, number: str, challenge: str, *, password: str | None = None,
                   cseq: int = 2) -> Reply:
    creds = authorization(challenge, number=number, method="REGISTER", uri=REG_URI,
                          password=password)
    return lab.reply(register(number, call_id=f"auth-{number}", cseq=cseq,
                              headers=(("Authorization", creds),)))


def test_register_without_credentials_is_401_with_one_challenge_per_algorithm(
        auth_lab: Lab) -> None:
    rep = auth_lab.reply(register(ALICE))
    assert rep.status == 401
    chs = _challenges(rep, "WWW-Authenticate")
    assert [c.algorithm for c in chs] == ["SHA-256", "MD5"]
    assert {c.realm for c in chs} == {DOMAIN}
    assert all(c.qop == ("auth",) and not c.stale for c in chs)
    assert auth_lab.registrar.binding_count == 0


@pytest.mark.parametrize("which", [0, 1], ids=["SHA-256", "MD5"])
def test_register_with_correct_credentials_is_200(auth_lab: Lab, which: int) -> None:
    challenge = header(auth_lab.reply(register(ALICE)), "WWW-Authenticate")[which]
    assert _register_with(auth_lab, ALICE, challenge).status == 200
    assert auth_lab.registrar.binding_count == 1


def test_register_with_a_wrong_password_is_403(auth_lab: Lab) -> None:
    challenge = header(auth_lab.reply(register(ALICE)), "WWW-Authenticate")[0]
    assert _register_with(auth_lab, ALICE, challenge, password="guess").status == 403
    assert auth_lab.registrar.binding_count == 0


def test_register_with_another_users_credentials_is_403(auth_lab: Lab) -> None:
    challenge = header(auth_lab.reply(register(ALICE)), "WWW-Authenticate")[0]
    creds = authorization(challenge, number=BOB, method="REGISTER", uri=REG_URI)
    rep = auth_lab.reply(register(ALICE, cseq=2, headers=(("Authorization", creds),)))
    assert rep.status == 403


def test_register_with_a_stale_nonce_is_401_stale(auth_lab: Lab) -> None:
    challenge = header(auth_lab.reply(register(ALICE)), "WWW-Authenticate")[0]
    auth_lab.wall += 301  # nonce_ttl_s = 300
    rep = _register_with(auth_lab, ALICE, challenge)
    assert rep.status == 401
    chs = _challenges(rep, "WWW-Authenticate")
    assert len(chs) == 2 and all(c.stale for c in chs)
    assert _register_with(auth_lab, ALICE, header(rep, "WWW-Authenticate")[1],
                          cseq=3).status == 200


def test_register_with_a_forged_nonce_is_challenged_again_not_stale(auth_lab: Lab) -> None:
    forged = f'Digest realm="{DOMAIN}", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ' \
             'algorithm=MD5, qop="auth"'
    rep = _register_with(auth_lab, ALICE, forged)
    assert rep.status == 401
    assert not any(c.stale for c in _challenges(rep, "WWW-Authenticate"))


def test_credentials_for_another_realm_are_ignored(auth_lab: Lab) -> None:
    other = header(auth_lab.reply(register(ALICE)), "WWW-Authenticate")[1].replace(
        DOMAIN, "other.realm")
    assert _register_with(auth_lab, ALICE, other).status == 401


def test_unparsable_credentials_are_400(auth_lab: Lab) -> None:
    rep = auth_lab.reply(register(ALICE, headers=(("Authorization", 'Digest username="x"'),)))
    assert rep.status == 400


def test_register_of_an_unknown_number_with_credentials_is_403(auth_lab: Lab) -> None:
    challenge = header(auth_lab.reply(register(STRANGER)), "WWW-Authenticate")[0]
    assert _register_with(auth_lab, STRANGER, challenge).status == 403


def test_message_from_a_ue_registered_on_the_same_flow_is_trusted(auth_lab: Lab) -> None:
    auth_lab.online(ALICE, UDP_A)
    auth_lab.online(BOB, UDP_B)
    assert isinstance(auth_lab.route(message(BOB, frm=ALICE), UDP_A), Relay)


def test_message_from_another_flow_without_credentials_is_407(auth_lab: Lab) -> None:
    auth_lab.online(ALICE, UDP_A)
    auth_lab.online(BOB, UDP_B)
    rep = auth_lab.reply(message(BOB, frm=ALICE), TCP_A)  # same host, other transport/port
    assert rep.status == 407
    assert header(rep, "WWW-Authenticate") == []
    chs = _challenges(rep, "Proxy-Authenticate")
    assert [c.algorithm for c in chs] == ["SHA-256", "MD5"]


def test_message_with_proxy_authorization_from_an_untrusted_flow_is_relayed(
        auth_lab: Lab) -> None:
    auth_lab.online(BOB, UDP_B)
    challenge = header(auth_lab.reply(message(BOB, frm=ALICE), TCP_A), "Proxy-Authenticate")[0]
    creds = authorization(challenge, number=ALICE, method="MESSAGE", uri=f"sip:{BOB}@{DOMAIN}")
    req = message(BOB, frm=ALICE, headers=(("Proxy-Authorization", creds),))
    assert isinstance(auth_lab.route(req, TCP_A), Relay)


def test_credentials_for_another_request_uri_are_refused(auth_lab: Lab) -> None:
    auth_lab.online(BOB, UDP_B)
    auth_lab.online("+8613800000003", UDP_A)
    challenge = header(auth_lab.reply(message(BOB, frm=ALICE), TCP_A), "Proxy-Authenticate")[0]
    creds = authorization(challenge, number=ALICE, method="MESSAGE", uri=f"sip:{BOB}@{DOMAIN}")
    replayed = message("+8613800000003", frm=ALICE, headers=(("Proxy-Authorization", creds),))
    assert auth_lab.reply(replayed, TCP_A).status in (400, 403, 407)


def test_cancel_and_ack_are_not_challenged(auth_lab: Lab) -> None:
    assert auth_lab.reply(request("CANCEL", f"sip:{BOB}@{DOMAIN}"), TCP_A).status == 481
    assert isinstance(auth_lab.route(request("ACK", f"sip:{BOB}@{DOMAIN}"), TCP_A), Absorb)

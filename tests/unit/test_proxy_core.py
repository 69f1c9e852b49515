"""The sans-IO proxy core: bytes in with the flow they came on, bytes out through a fake
``send``, time driven by hand (RFC 3261 §16 proxy rules over §17 transactions)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivegmc.center.proxy import ProxyCore, salvage_response
from fivegmc.core.registrar import Flow
from fivegmc.core.routing import Router, loop_hash
from fivegmc.sip.transaction import TimerConfig

from .sipbuild import (
    ALICE,
    BOB,
    DOMAIN,
    NODE_SENT_BY,
    TCP_A,
    TCP_B,
    UDP_A,
    UDP_B,
    UDP_B2,
    body_of,
    contact_for,
    directory_for,
    header_lines,
    lab_profile,
    message_bytes,
    name_addr,
    parse_request,
    parse_response,
    register_bytes,
    registrar_for,
    request_bytes,
    response_bytes,
)

TIMERS = TimerConfig(t1=0.5, t2=4.0, t4=5.0)
T1 = TIMERS.t1
MAX_SIZE = 4096

Sent = list[tuple[bytes, Flow]]


class Core:
    """A ProxyCore over the lab profile whose ``send`` records what would go out."""

    def __init__(self, *, max_message_size: int = MAX_SIZE) -> None:
        profile = lab_profile()
        self.registrar = registrar_for(profile)
        router = Router(profile, self.registrar, directory_for(profile),
                        local_sent_by=lambda: frozenset({NODE_SENT_BY}))
        self.outbox: Sent = []
        self.core = ProxyCore(
            router, send=lambda data, flow: self.outbox.append((data, flow)),
            local_via=lambda transport: f"SIP/2.0/{transport.upper()} {NODE_SENT_BY}",
            timers=TIMERS, max_message_size=max_message_size, server_header="fivegmc-test",
        )

    def online(self, number: str, flow: Flow, *, q: str = "") -> None:
        """Put a binding straight into the registrar (REGISTER itself is tested elsewhere)."""
        contact = contact_for(flow, number, params=f"q={q}" if q else "")
        out = self.registrar.register(number, [name_addr(contact)], expires_header=3600,
                                      call_id=f"r-{flow.host}-{flow.port}", cseq=1, flow=flow,
                                      now=0.0)
        assert out.status == 200

    def receive(self, data: bytes, flow: Flow, now: float) -> Sent:
        """Feed one message; return what the core sent in reaction."""
        self.outbox.clear()
        self.core.receive(data, flow, now)
        out = list(self.outbox)
        self.outbox.clear()
        return out

    def run_until(self, end: float) -> list[tuple[float, bytes, Flow]]:
        """Fire every timer due up to ``end``, each at its own deadline; (time, data, flow)."""
        fired: list[tuple[float, bytes, Flow]] = []
        while (deadline := self.core.next_deadline()) is not None and deadline <= end:
            self.outbox.clear()
            self.core.handle_timer(deadline)
            fired += [(deadline, data, flow) for data, flow in self.outbox]
        self.outbox.clear()
        return fired

    def relay(self, data: bytes, flow: Flow = UDP_A, now: float = 0.0) -> Sent:
        """Feed a request the core must relay; return the forwarded copies."""
        out = self.receive(data, flow, now)
        assert out and all(d.startswith(b"MESSAGE ") for d, _ in out), out
        return out


def status_of(data: bytes) -> int:
    return parse_response(data).status


def only(sent: Sent) -> tuple[bytes, Flow]:
    assert len(sent) == 1, sent
    return sent[0]


@pytest.fixture
def core() -> Core:
    c = Core()
    c.online(BOB, UDP_B)
    return c


# -- relaying one MESSAGE --------------------------------------------------------------------


def test_message_is_forwarded_with_our_via_on_top_and_everything_else_as_received(
        core: Core) -> None:
    original = message_bytes(BOB, headers=(("X-Trace", "a, b;c"), ("P-Preferred-Service",
                             "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.msg")))
    fwd, flow = only(core.relay(original))
    assert flow == UDP_B
    lines = fwd.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    assert lines[0] == f"MESSAGE sip:{BOB}@192.0.2.2:5060 SIP/2.0"
    via = lines[1]
    assert re.fullmatch(rf"Via: SIP/2\.0/UDP {NODE_SENT_BY};branch=z9hG4bK\S+", via)
    expected = [ln if not ln.startswith("Max-Forwards:") else "Max-Forwards: 69"
                for ln in header_lines(original)]
    assert lines[2:] == expected
    assert body_of(fwd) == body_of(original)


def test_forwarded_branch_embeds_the_loop_hash_and_differs_per_request(core: Core) -> None:
    original = message_bytes(BOB)
    first = parse_request(only(core.relay(original))[0])
    second = parse_request(only(core.relay(message_bytes(BOB)))[0])
    b1, b2 = first.top_via().branch, second.top_via().branch
    assert b1 and b2 and b1 != b2
    # the hash of the request as received (before the Request-URI was rewritten), §16.6 step 8
    assert b1.startswith("z9hG4bK" + loop_hash(parse_request(original)))


def test_response_is_relayed_upstream_without_our_via_and_otherwise_byte_identical(
        core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB)))
    answer = response_bytes(fwd, 200, "OK", headers=(("Server", "handset/1.0"),
                            ("X-Odd", "  spaced ,, value")), body=b"\x00\xffopaque")
    up, flow = only(core.receive(answer, UDP_B, 0.1))
    assert flow == UDP_A
    our_via = answer.split(b"\r\n")[1]
    assert our_via.startswith(b"Via: SIP/2.0/UDP " + NODE_SENT_BY.encode())
    assert up == answer.replace(our_via + b"\r\n", b"", 1)


def test_response_with_both_vias_in_one_header_line_loses_only_ours(core: Core) -> None:
    fwd = parse_request(only(core.relay(message_bytes(BOB)))[0])
    ours, ues = fwd.headers.get_fields("Via")
    answer = (f"SIP/2.0 200 OK\r\nVia: {ours}, {ues}\r\nFrom: {fwd.headers.get('From')}\r\n"
              f"To: {fwd.headers.get('To')};tag=x\r\nCall-ID: {fwd.call_id()}\r\n"
              f"CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n").encode()
    up, _ = only(core.receive(answer, UDP_B, 0.1))
    assert parse_response(up).headers.get_all("Via") == [ues]


def test_downstream_486_goes_upstream(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB)))
    up, flow = only(core.receive(response_bytes(fwd, 486, "Busy Here"), UDP_B, 0.2))
    assert (status_of(up), flow) == (486, UDP_A)


def test_provisional_180_is_relayed_but_100_is_hop_by_hop(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB)))
    assert core.receive(response_bytes(fwd, 100, "Trying", to_tag=None), UDP_B, 0.1) == []
    up, _ = only(core.receive(response_bytes(fwd, 180, "Ringing"), UDP_B, 0.2))
    assert status_of(up) == 180
    final, _ = only(core.receive(response_bytes(fwd, 200, "OK"), UDP_B, 0.3))
    assert status_of(final) == 200


def test_a_request_the_router_answers_gets_the_reply_with_our_to_tag_and_server(
        core: Core) -> None:
    req = message_bytes("+8613800000009")  # RCS number, not registered → 480
    up, flow = only(core.receive(req, UDP_A, 0.0))
    resp = parse_response(up)
    assert (resp.status, flow) == (480, UDP_A)
    assert resp.to().tag
    assert resp.headers.get("Server") == "fivegmc-test"
    for name in ("Via", "From", "Call-ID", "CSeq"):
        assert resp.headers.get_fields(name) == parse_request(req).headers.get_fields(name)


def test_max_forwards_absent_is_forwarded_as_70(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB, max_forwards=None)))
    assert parse_request(fwd).headers.get_fields("Max-Forwards") == ["70"]


# -- retransmissions over UDP ------------------------------------------------------------------


def test_retransmitted_request_before_the_answer_is_absorbed_without_a_second_forward(
        core: Core) -> None:
    req = message_bytes(BOB)
    only(core.relay(req, UDP_A, 0.0))
    assert core.receive(req, UDP_A, 0.5) == []
    assert core.core.transaction_counts == (1, 1)


def test_retransmitted_request_after_the_answer_gets_the_same_final_again(core: Core) -> None:
    req = message_bytes(BOB)
    fwd, _ = only(core.relay(req))
    first, _ = only(core.receive(response_bytes(fwd, 200, "OK"), UDP_B, 0.1))
    again, flow = only(core.receive(req, UDP_A, 1.0))
    assert (again, flow) == (first, UDP_A)
    again2, _ = only(core.receive(req, UDP_A, 20.0))
    assert again2 == first


def test_rfc2543_request_without_magic_cookie_is_matched_for_retransmissions(
        core: Core) -> None:
    req = message_bytes(BOB, branch="oldstyle1")
    fwd, _ = only(core.relay(req))
    assert core.receive(req, UDP_A, 0.3) == []
    first, _ = only(core.receive(response_bytes(fwd, 200, "OK"), UDP_B, 0.4))
    assert core.receive(req, UDP_A, 0.5) == [(first, UDP_A)]


def test_retransmitted_final_response_from_downstream_is_not_relayed_twice(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB)))
    answer = response_bytes(fwd, 200, "OK")
    only(core.receive(answer, UDP_B, 0.1))
    assert core.receive(answer, UDP_B, 0.6) == []


def test_router_reply_is_resent_on_retransmission_without_routing_again(core: Core) -> None:
    req = message_bytes("+8613800000009")
    first, _ = only(core.receive(req, UDP_A, 0.0))
    core.online("+8613800000009", UDP_B2)  # would now be relayed if routed again
    again, _ = only(core.receive(req, UDP_A, 0.5))
    assert again == first


def test_unanswered_request_is_retransmitted_by_timer_e_then_silence_at_timer_f(
        core: Core) -> None:
    """RFC 4320 §4.1: a transaction-stateful element MUST NOT send 408 to a non-INVITE
    request; at Timer F the node gives up silently and releases the server side."""
    fwd, _ = only(core.relay(message_bytes(BOB), UDP_A, 0.0))
    fired = core.run_until(64 * T1)
    resends = [(t, d, f) for t, d, f in fired if f == UDP_B]
    # E starts at T1, doubles up to T2 (4 s), then stays at T2 (§17.1.2.2)
    assert [t for t, _, _ in resends] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5,
                                          31.5]
    assert all(d == fwd for _, d, _ in resends)
    upstream = [(t, d) for t, d, f in fired if f == UDP_A]
    assert upstream == []
    assert core.core.transaction_counts == (0, 0)  # both sides released at Timer F


def test_transactions_are_cleaned_up_after_timers_j_and_k(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB), UDP_A, 0.0))
    only(core.receive(response_bytes(fwd, 200, "OK"), UDP_B, 1.0))
    assert core.core.transaction_counts == (1, 1)
    assert core.run_until(1.0 + TIMERS.t4) == []  # Timer K (T4) ends the client side
    assert core.core.transaction_counts == (1, 0)
    assert core.run_until(1.0 + 64 * T1) == []  # Timer J (64·T1) ends the server side
    assert core.core.transaction_counts == (0, 0)
    assert core.core.next_deadline() is None


def test_timed_out_transactions_are_all_gone_after_timer_j(core: Core) -> None:
    only(core.relay(message_bytes(BOB), UDP_A, 0.0))
    core.run_until(2 * 64 * T1)
    assert core.core.transaction_counts == (0, 0)
    assert core.core.next_deadline() is None


def test_late_response_after_the_408_is_dropped(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB), UDP_A, 0.0))
    core.run_until(64 * T1)
    assert core.receive(response_bytes(fwd, 200, "OK"), UDP_B, 33.0) == []


def test_next_deadline_is_the_earliest_timer(core: Core) -> None:
    assert core.core.next_deadline() is None
    only(core.relay(message_bytes(BOB), UDP_A, 10.0))
    assert core.core.next_deadline() == 10.0 + T1


# -- reliable transports ------------------------------------------------------------------------


def test_over_tcp_nothing_is_retransmitted_and_timer_f_ends_it_silently() -> None:
    c = Core()
    c.online(BOB, TCP_B)
    fwd, flow = only(c.relay(message_bytes(BOB, flow=TCP_A), TCP_A, 0.0))
    assert flow == TCP_B
    assert parse_request(fwd).top_via().transport == "TCP"
    assert c.core.next_deadline() == 64 * T1
    fired = c.run_until(64 * T1)
    assert fired == []  # no retransmission over TCP, and no 408 (RFC 4320 §4.1)
    assert c.core.transaction_counts == (0, 0)


def test_over_tcp_transactions_end_with_the_final_response() -> None:
    c = Core()
    c.online(BOB, TCP_B)
    fwd, _ = only(c.relay(message_bytes(BOB, flow=TCP_A), TCP_A, 0.0))
    up, flow = only(c.receive(response_bytes(fwd, 200, "OK"), TCP_B, 0.1))
    assert (status_of(up), flow) == (200, TCP_A)
    assert c.core.transaction_counts == (0, 0)
    assert c.core.next_deadline() is None


def test_udp_request_to_a_tcp_binding_goes_over_the_registration_flow() -> None:
    c = Core()
    c.online(BOB, TCP_B)
    _, flow = only(c.relay(message_bytes(BOB), UDP_A, 0.0))
    assert flow == TCP_B
    assert c.core.next_deadline() == 64 * T1  # the TCP branch has no Timer E


def test_forwarding_onto_tcp_adds_a_missing_content_length() -> None:
    c = Core()
    c.online(BOB, TCP_B)
    fwd, _ = only(c.relay(message_bytes(BOB, content_length=False), UDP_A, 0.0))
    assert parse_request(fwd).headers.get("Content-Length") == str(len(body_of(fwd)))


# -- forking (§16.7) --------------------------------------------------------------------------


@pytest.fixture
def forked() -> Core:
    c = Core()
    c.online(BOB, UDP_B)
    c.online(BOB, UDP_B2, q="0.5")
    return c


def fork(c: Core) -> dict[Flow, bytes]:
    sent = c.relay(message_bytes(BOB), UDP_A, 0.0)
    assert [f for _, f in sent] == [UDP_B, UDP_B2]
    branches = {parse_request(d).top_via().branch for d, _ in sent}
    assert len(branches) == 2
    return {f: d for d, f in sent}


def test_first_2xx_wins_and_a_later_2xx_is_not_forwarded(forked: Core) -> None:
    fwd = fork(forked)
    up, _ = only(forked.receive(response_bytes(fwd[UDP_B2], 200, "OK", to_tag="b2"), UDP_B2,
                                0.1))
    assert parse_response(up).to().tag == "b2"
    assert forked.receive(response_bytes(fwd[UDP_B], 200, "OK", to_tag="b1"), UDP_B, 0.2) == []


def test_a_2xx_is_forwarded_at_once_while_another_branch_is_pending(forked: Core) -> None:
    fwd = fork(forked)
    up, _ = only(forked.receive(response_bytes(fwd[UDP_B], 202, "Accepted"), UDP_B, 0.1))
    assert status_of(up) == 202
    assert forked.receive(response_bytes(fwd[UDP_B2], 486, "Busy"), UDP_B2, 0.2) == []


def test_no_failure_goes_upstream_before_every_branch_answered(forked: Core) -> None:
    fwd = fork(forked)
    assert forked.receive(response_bytes(fwd[UDP_B], 486, "Busy Here"), UDP_B, 0.1) == []
    up, _ = only(forked.receive(response_bytes(fwd[UDP_B2], 200, "OK"), UDP_B2, 0.2))
    assert status_of(up) == 200


@pytest.mark.parametrize(
    ("first", "second", "best"),
    [
        (486, 404, 486),  # same class: either; the first one is kept
        (404, 486, 404),
        (500, 486, 486),  # the lowest class wins
        (486, 302, 302),
        (486, 603, 603),  # a 6xx is preferred to anything else
        (603, 302, 603),
        (500, 502, 500),
    ],
)
def test_best_of_two_failures(forked: Core, first: int, second: int, best: int) -> None:
    fwd = fork(forked)
    assert forked.receive(response_bytes(fwd[UDP_B], first), UDP_B, 0.1) == []
    up, flow = only(forked.receive(response_bytes(fwd[UDP_B2], second), UDP_B2, 0.2))
    assert (status_of(up), flow) == (best, UDP_A)


def test_a_received_failure_beats_the_408_of_a_timed_out_branch(forked: Core) -> None:
    fwd = fork(forked)
    forked.receive(response_bytes(fwd[UDP_B], 404, "Not Found"), UDP_B, 0.1)
    fired = forked.run_until(64 * T1)
    assert [(status_of(d), f) for _, d, f in fired if f == UDP_A] == [(404, UDP_A)]


def test_both_branches_timing_out_send_nothing_upstream(forked: Core) -> None:
    fork(forked)
    fired = forked.run_until(64 * T1)
    assert [status_of(d) for _, d, f in fired if f == UDP_A] == []  # RFC 4320 §4.1
    assert forked.core.transaction_counts == (0, 0)


def test_a_downstream_503_goes_upstream_as_500(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB)))
    up, _ = only(core.receive(response_bytes(fwd, 503, "Service Unavailable"), UDP_B, 0.1))
    assert status_of(up) == 500


def test_challenges_of_all_branches_are_aggregated(forked: Core) -> None:
    fwd = fork(forked)
    forked.receive(response_bytes(fwd[UDP_B], 401, "Unauthorized",
                                  headers=(("WWW-Authenticate", 'Digest realm="b1", nonce="1"'),)),
                   UDP_B, 0.1)
    up, _ = only(forked.receive(response_bytes(
        fwd[UDP_B2], 407, "Proxy Authentication Required",
        headers=(("Proxy-Authenticate", 'Digest realm="b2", nonce="2"'),)), UDP_B2, 0.2))
    resp = parse_response(up)
    assert resp.headers.get_fields("WWW-Authenticate") == ['Digest realm="b1", nonce="1"']
    assert resp.headers.get_fields("Proxy-Authenticate") == ['Digest realm="b2", nonce="2"']


def test_a_4xx_that_helps_resubmission_is_preferred(forked: Core) -> None:
    fwd = fork(forked)
    forked.receive(response_bytes(fwd[UDP_B], 404, "Not Found"), UDP_B, 0.1)
    up, _ = only(forked.receive(response_bytes(fwd[UDP_B2], 415, "Unsupported Media Type",
                                               headers=(("Accept", "text/plain"),)), UDP_B2, 0.2))
    assert status_of(up) == 415


# -- transport failure (§16.9) --------------------------------------------------------------------


def test_tcp_branch_failure_is_answered_500_upstream() -> None:
    # §16.9: a transport error counts as a 503 from that branch; §16.7 step 6 then makes the
    # 503 a 500 before it goes upstream.
    c = Core()
    c.online(BOB, TCP_B)
    only(c.relay(message_bytes(BOB), UDP_A, 0.0))
    c.outbox.clear()
    c.core.flow_failed(TCP_B, 0.1)
    up, flow = only(c.outbox)
    assert (status_of(up), flow) == (500, UDP_A)
    assert c.core.transaction_counts == (1, 0)


def test_failed_branch_loses_to_another_branchs_answer() -> None:
    c = Core()
    c.online(BOB, TCP_B)
    c.online(BOB, UDP_B2, q="0.5")
    sent = c.relay(message_bytes(BOB), UDP_A, 0.0)
    c.outbox.clear()
    c.core.flow_failed(TCP_B, 0.1)
    assert c.outbox == []  # the UDP branch is still pending
    udp_fwd = next(d for d, f in sent if f == UDP_B2)
    up, _ = only(c.receive(response_bytes(udp_fwd, 486, "Busy Here"), UDP_B2, 0.2))
    assert status_of(up) == 486


def test_failure_of_an_unrelated_flow_changes_nothing(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB)))
    core.core.flow_failed(TCP_B, 0.1)
    assert core.outbox == []
    up, _ = only(core.receive(response_bytes(fwd, 200, "OK"), UDP_B, 0.2))
    assert status_of(up) == 200


# -- loops, CANCEL, strays ---------------------------------------------------------------------


def test_request_coming_back_to_us_unchanged_is_answered_482(core: Core) -> None:
    original = message_bytes(BOB)
    fwd, _ = only(core.relay(original))
    # A misconfigured next hop sends it back with the original Request-URI and its own Via.
    back = fwd.replace(fwd.split(b"\r\n", 1)[0], original.split(b"\r\n", 1)[0], 1)
    back = back.replace(b"\r\n", b"\r\nVia: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKbounce\r\n",
                        1)
    up, flow = only(core.receive(back, UDP_B, 0.1))
    assert (status_of(up), flow) == (482, UDP_B)


def test_stray_response_is_dropped_silently(core: Core) -> None:
    stray = response_bytes(message_bytes(BOB, vias=(
        f"SIP/2.0/UDP {NODE_SENT_BY};branch=z9hG4bKnobody",)), 200, "OK")
    assert core.receive(stray, UDP_B, 0.0) == []
    assert core.core.transaction_counts == (0, 0)


def test_response_with_the_right_branch_but_another_method_is_stray(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB)))
    answer = response_bytes(fwd, 200, "OK").replace(b"CSeq: 1 MESSAGE", b"CSeq: 1 OPTIONS")
    assert core.receive(answer, UDP_B, 0.1) == []


def test_stray_ack_is_absorbed(core: Core) -> None:
    assert core.receive(request_bytes("ACK", f"sip:{BOB}@{DOMAIN}"), UDP_A, 0.0) == []
    assert core.core.transaction_counts == (0, 0)


def test_cancel_without_a_matching_request_is_481(core: Core) -> None:
    up, _ = only(core.receive(request_bytes("CANCEL", f"sip:{BOB}@{DOMAIN}"), UDP_A, 0.0))
    assert status_of(up) == 481


def test_cancel_of_a_pending_message_is_200(core: Core) -> None:
    req = message_bytes(BOB, branch="z9hG4bKpending", call_id="cx", cseq=5, from_tag="fx")
    only(core.relay(req))
    cancel = request_bytes("CANCEL", f"sip:{BOB}@{DOMAIN}", branch="z9hG4bKpending",
                           call_id="cx", cseq=5, from_tag="fx")
    up, _ = only(core.receive(cancel, UDP_A, 0.1))
    assert status_of(up) == 200


# -- Via and Route handling of received requests -------------------------------------------


def test_via_gets_received_when_sent_by_is_not_the_source_address(core: Core) -> None:
    natted = message_bytes("+8613800000009", flow=Flow("udp", "10.0.0.5", 5060))
    up, _ = only(core.receive(natted, UDP_A, 0.0))  # 480, answered by the node itself
    assert parse_response(up).top_via().param("received") == UDP_A.host


def test_empty_rport_is_filled_in(core: Core) -> None:
    up, _ = only(core.receive(message_bytes("+8613800000009", rport=True), UDP_A, 0.0))
    via = parse_response(up).top_via()
    assert (via.param("rport"), via.param("received")) == (str(UDP_A.port), UDP_A.host)


def test_our_own_route_entry_is_removed_before_forwarding(core: Core) -> None:
    fwd, _ = only(core.relay(message_bytes(BOB, headers=(("Route", f"<sip:{NODE_SENT_BY};lr>"),))))
    assert parse_request(fwd).headers.get_fields("Route") == []


# -- bad input ---------------------------------------------------------------------------------


def test_unparsable_request_with_readable_headers_is_answered_400_saying_why(
        core: Core) -> None:
    good = message_bytes(BOB, call_id="bad1", cseq=9, from_tag="fbad")
    broken = re.sub(rb"Content-Length: \d+", b"Content-Length: 99999", good)
    up, flow = only(core.receive(broken, UDP_A, 0.0))
    resp = parse_response(up)
    assert (resp.status, flow) == (400, UDP_A)
    assert "Content-Length" in resp.reason
    req_head = {n: v for n, v in (ln.split(": ", 1) for ln in header_lines(good))}
    assert resp.headers.get("Via") == req_head["Via"]
    assert resp.headers.get("From") == req_head["From"]
    assert resp.headers.get("Call-ID") == req_head["Call-ID"]
    assert resp.headers.get("CSeq") == req_head["CSeq"]
    to = resp.headers.get("To") or ""
    assert to.startswith(req_head["To"]) and resp.to().tag


def test_request_with_a_bad_header_value_is_answered_400_naming_it(core: Core) -> None:
    bad = message_bytes(BOB, max_forwards=None, headers=(("Max-Forwards", "lots"),))
    up, _ = only(core.receive(bad, UDP_A, 0.0))
    resp = parse_response(up)
    assert resp.status == 400
    assert "Max-Forwards" in resp.reason and "\r" not in resp.reason
    assert resp.headers.get("Call-ID") == parse_request(bad).call_id()
    assert core.core.transaction_counts == (0, 0)


def test_malformed_from_is_answered_400(core: Core) -> None:
    bad = message_bytes(BOB).replace(b"From: <sip:", b"From: <bogus", 1)
    up, _ = only(core.receive(bad, UDP_A, 0.0))
    assert status_of(up) == 400


def test_oversize_datagram_is_answered_513(core: Core) -> None:
    big = message_bytes(BOB, body=b"x" * MAX_SIZE, content_type="text/plain")
    up, flow = only(core.receive(big, UDP_A, 0.0))
    resp = parse_response(up)
    assert (resp.status, flow) == (513, UDP_A)
    assert resp.reason.startswith("Message Too Large")
    assert resp.headers.get("CSeq") == "1 MESSAGE"
    assert core.core.transaction_counts == (0, 0)


@pytest.mark.parametrize("garbage", [
    b"hello world\r\n\r\n",
    b"\x00\x01\x02\xff" * 10,
    b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",  # a response cannot be answered
    b"MESSAGE sip:a@b SIP/2.0\r\nVia: nonsense\r\nCSeq: x\r\n\r\n",
    b"",
])
def test_unanswerable_garbage_sends_nothing(core: Core, garbage: bytes) -> None:
    assert core.receive(garbage, UDP_A, 0.0) == []
    assert core.receive(garbage, TCP_A, 0.0) == []


def test_salvage_needs_a_request_line_and_all_five_headers() -> None:
    head = (b"MESSAGE sip:x@y SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs\r\n"
            b"f: <sip:a@b>;tag=1\r\nt: <sip:x@y>\r\ni: abc\r\nCSeq: 4 MESSAGE\r\n\r\n")
    out = salvage_response(head, 400, "Bad Request (test)", "tg")
    assert out is not None
    resp = parse_response(out)
    assert (resp.status, resp.reason, resp.to().tag) == (400, "Bad Request (test)", "tg")
    assert salvage_response(head.replace(b"i: abc\r\n", b""), 400, "x", "t") is None
    assert salvage_response(b"SIP/2.0 200 OK\r\n" + head.split(b"\r\n", 1)[1], 400, "x",
                            "t") is None


def test_crlf_keepalive_gets_a_crlf_pong_on_tcp_and_nothing_on_udp(core: Core) -> None:
    assert core.receive(b"\r\n\r\n", TCP_A, 0.0) == [(b"\r\n", TCP_A)]
    assert core.receive(b"\r\n\r\n", Flow("tls", "192.0.2.1", 5061), 0.0) == [
        (b"\r\n", Flow("tls", "192.0.2.1", 5061))]
    assert core.receive(b"\r\n\r\n", UDP_A, 0.0) == []


@pytest.mark.parametrize("where", ["CSeq", "Max-Forwards", "Content-Length", "Expires",
                                   "contact expires"])
def test_non_ascii_digits_in_numeric_fields_are_400_not_a_crash(where: str) -> None:
    c = Core()
    data = register_bytes(ALICE, expires=600)
    two = "\u00b2".encode()  # SUPERSCRIPT TWO: str.isdigit() is True, int() refuses it
    data = {
        "CSeq": lambda d: d.replace(b"CSeq: 1 ", b"CSeq: " + two + b" "),
        "Max-Forwards": lambda d: d.replace(b"Max-Forwards: 70", b"Max-Forwards: " + two),
        "Content-Length": lambda d: d.replace(b"Content-Length: 0", b"Content-Length: " + two),
        "Expires": lambda d: d.replace(b"Expires: 600", b"Expires: " + two),
        "contact expires": lambda d: d.replace(b"\r\nExpires: 600",
                                               b";expires=" + two + b"\r\nExpires: 600"),
    }[where](data)
    sent = c.receive(data, UDP_A, 0.0)
    if where == "CSeq":
        # No answer can be matched by the UAC without a readable CSeq: dropped and counted.
        assert sent == []
        return
    up, _ = only(sent)
    assert status_of(up) == 400


# -- properties: peer bytes never raise --------------------------------------------------------


_TEMPLATE = message_bytes(BOB, headers=(("Contact", contact_for(UDP_A, ALICE)),
                                        ("Expires", "60"), ("Proxy-Require", "path")))
_LINES = _TEMPLATE.split(b"\r\n")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), reliable=st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, reliable: bool) -> None:
    c = Core()
    c.online(BOB, UDP_B)
    flow = TCP_A if reliable else UDP_A
    c.core.receive(data, flow, 0.0)
    c.core.handle_timer(100.0)


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(0, len(_LINES) - 1),
    junk=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=30),
    reliable=st.booleans(),
    mode=st.sampled_from(["replace-value", "append", "replace-line"]),
)
def test_a_valid_request_with_one_mangled_line_never_raises(index: int, junk: str,
                                                            reliable: bool, mode: str) -> None:
    lines = list(_LINES)
    line = lines[index]
    if mode == "replace-value" and b":" in line:
        lines[index] = line.split(b":", 1)[0] + b": " + junk.encode()
    elif mode == "append":
        lines[index] = line + junk.encode()
    else:
        lines[index] = junk.encode()
    c = Core()
    c.online(BOB, UDP_B)
    c.core.receive(b"\r\n".join(lines), TCP_A if reliable else UDP_A, 0.0)
    c.core.handle_timer(100.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([100, 180, 200, 202, 302, 404, 486, 500, 503, 603]),
                          st.sampled_from([0, 1]), st.floats(0.0, 40.0)),
                max_size=6))
def test_any_sequence_of_branch_responses_sends_at_most_one_final_upstream(
        answers: list[tuple[int, int, float]]) -> None:
    c = Core()
    c.online(BOB, UDP_B)
    c.online(BOB, UDP_B2, q="0.5")
    sent = c.relay(message_bytes(BOB), UDP_A, 0.0)
    fwd = {f: d for d, f in sent}
    finals: list[int] = []
    for status, which, at in sorted(answers, key=lambda a: a[2]):
        for _, d, f in c.run_until(at):
            if f == UDP_A:
                finals.append(status_of(d))
        flow = (UDP_B, UDP_B2)[which]
        for d, f in c.receive(response_bytes(fwd[flow], status, to_tag=f"t{which}"), flow, at):
            if f == UDP_A and status_of(d) >= 200:
                finals.append(status_of(d))
    for _, d, f in c.run_until(1000.0):
        if f == UDP_A and status_of(d) >= 200:
            finals.append(status_of(d))
    # Exactly one, unless every branch timed out: then none (RFC 4320 §4.1, no 408).
    assert len(finals) <= 1
    assert 408 not in finals
    assert c.core.transaction_counts == (0, 0)

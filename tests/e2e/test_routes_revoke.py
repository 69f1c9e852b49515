"""Static routes to a trusted next hop (how the 5GMC reaches the MaaP), RFC 3841 no-queue, and
revoke of stored messages — end to end on real sockets."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fivegmc.cpim import parse_cpim, parse_imdn
from fivegmc.node import Node, running
from fivegmc.sip.message import Request

from .conftest import make_profile
from .ue import DOMAIN, UE, cpim_body, wait_for

pytestmark = pytest.mark.e2e
A = "+8613800000001"
B = "+8613800000002"
SMS = "+8613900000001"
BOTDOMAIN = "botplatform.test"
BOT = f"sip:bot1@{BOTDOMAIN}"


async def start_peer(node: Node) -> UE:
    """A UDP peer standing in for the chatbot platform, routed to by domain."""
    lst = node.listener("udp")
    peer = await UE("bot1", (lst.host, lst.port), "udp").start()
    node.sip.add_route(BOTDOMAIN, f"sip:{peer.local[0]}:{peer.local[1]}")
    return peer


def bot_message(peer: UE, to: str, *, body: bytes, ctype: str = "message/cpim",
                extra: list[tuple[str, str]] | None = None) -> Request:
    uri = f"sip:{to}@{DOMAIN};user=phone"
    req = peer.build("MESSAGE", uri, f"<{uri}>", headers=[("Content-Type", ctype),
                                                          *(extra or [])], body=body)
    req.headers.set("From", f"<{BOT}>;tag=b{uuid.uuid4().hex[:6]}")
    return req


def bot_cpim(to: str, text: str, mid: str) -> bytes:
    return (f"From: <{BOT}>\r\nTo: <sip:{to}@{DOMAIN}>\r\nDateTime: 2026-11-21T12:00:00Z\r\n"
            f"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: {mid}\r\n"
            "imdn.Disposition-Notification: positive-delivery, negative-delivery\r\n\r\n"
            f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(text)}\r\n\r\n"
            f"{text}").encode()


def revoke_body(mid: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><revoke xmlns="urn:gsma:params:xml:ns:rcs:'
            f'rcs:revoke"><Message-ID>{mid}</Message-ID></revoke>').encode()


async def test_message_to_a_routed_domain_reaches_the_next_hop_uri_unchanged(
        node: Node, ue_factory) -> None:
    peer = await start_peer(node)
    try:
        a = await ue_factory(A)
        await a.register()
        resp = await a.message("bot1", "hi bot", domain=BOTDOMAIN)
        assert resp.status == 200
        assert len(peer.received) == 1
        got = peer.received[0]
        assert got.uri == f"sip:bot1@{BOTDOMAIN}"  # Request-URI kept (loose next hop)
        assert parse_cpim(got.body).content == b"hi bot"
    finally:
        peer.close()


async def test_route_peer_is_trusted_when_auth_is_on() -> None:
    profile = make_profile("auth.enabled=true",
                           "operator.number_ranges[0].password_template='lab-{number}'")
    async with running(profile) as node:
        peer = await start_peer(node)
        lst = node.listener("udp")
        b = await UE(B, (lst.host, lst.port), "udp").start()
        try:
            mid = uuid.uuid4().hex
            resp = await peer.request(bot_message(peer, B, body=bot_cpim(B, "a2p", mid)))
            assert resp.status == 202  # not 407: a configured peer; B offline → stored
            # a UE's own MESSAGE from its own domain is still challenged
            resp = await b.message(A, "not trusted")
            assert resp.status == 407
        finally:
            peer.close()
            b.close()


async def test_no_queue_offline_is_480_not_stored(node: Node, ue_factory) -> None:
    peer = await start_peer(node)
    try:
        mid = uuid.uuid4().hex
        req = bot_message(peer, B, body=bot_cpim(B, "do not store", mid),
                          extra=[("Request-Disposition", "no-queue")])
        assert (await peer.request(req)).status == 480
        b = await ue_factory(B)
        await b.register()
        await asyncio.sleep(0.3)
        assert b.received == []
    finally:
        peer.close()


async def test_revoke_removes_a_stored_message_and_fails_for_a_delivered_one(
        node: Node, ue_factory) -> None:
    peer = await start_peer(node)
    try:
        kept, withdrawn = uuid.uuid4().hex, uuid.uuid4().hex
        for mid, text in ((withdrawn, "withdrawn"), (kept, "kept")):
            req = bot_message(peer, B, body=bot_cpim(B, text, mid))
            assert (await peer.request(req)).status == 202
        revoke = bot_message(peer, B, body=revoke_body(withdrawn),
                             ctype="application/vnd.gsma.rcsrevoke+xml")
        assert (await peer.request(revoke)).status == 200
        again = bot_message(peer, B, body=revoke_body(withdrawn),
                            ctype="application/vnd.gsma.rcsrevoke+xml")
        assert (await peer.request(again)).status == 404  # nothing left to revoke
        b = await ue_factory(B)
        await b.register()
        await wait_for(lambda: len(b.received) >= 1)
        await asyncio.sleep(0.3)
        assert [parse_cpim(m.body).content for m in b.received] == [b"kept"]
        late = bot_message(peer, B, body=revoke_body(kept),
                           ctype="application/vnd.gsma.rcsrevoke+xml")
        assert (await peer.request(late)).status == 404  # already delivered
        bad = bot_message(peer, B, body=b"<revoke/>", ctype="application/vnd.gsma.rcsrevoke+xml")
        resp = await peer.request(bad)
        assert resp.status == 400 and "Message-ID" in resp.reason
    finally:
        peer.close()


async def test_negative_imdn_for_a_routed_sender_goes_to_the_next_hop() -> None:
    async with running(make_profile("messaging.validity_s=0.5")) as node:
        peer = await start_peer(node)
        try:
            mid = uuid.uuid4().hex
            req = bot_message(peer, B, body=bot_cpim(B, "expires", mid))
            assert (await peer.request(req)).status == 202
            await wait_for(lambda: len(peer.received) >= 1, timeout=6)
            imdn_req = peer.received[0]
            assert imdn_req.uri == BOT
            report = parse_imdn(parse_cpim(imdn_req.body).content)
            assert report.message_id == mid and report.status == "failed"
        finally:
            peer.close()


async def test_sms_only_recipient_of_a_routed_sender_is_480(node: Node) -> None:
    peer = await start_peer(node)
    try:
        req = bot_message(peer, SMS, body=cpim_body("bot1", SMS, "x"))
        assert (await peer.request(req)).status == 480
    finally:
        peer.close()

"""SIP over TLS, and digest authentication (MD5, SHA-256) end to end on real sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from fivegmc.node import running
from fivegmc.sip import digest

from .certs import make_self_signed
from .conftest import make_profile
from .ue import DOMAIN, UE

pytestmark = pytest.mark.e2e
A = "+8613800000001"
B = "+8613800000002"


async def test_message_over_tls(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    prof = make_profile(f'sip.tls_cert="{cert}"', f'sip.tls_key="{key}"', "sip.tls_port=0")
    async with running(prof) as node:
        lst = node.listener("tls")
        a = await UE(A, (lst.host, lst.port), "tls").start()
        b = await UE(B, (lst.host, lst.port), "tls").start()
        try:
            assert (await b.register()).status == 200
            resp = await a.message(B, "over TLS")
            assert resp.status == 200
            assert b"over TLS" in b.received[0].body
            assert b.received[0].top_via().transport == "TLS"
        finally:
            a.close()
            b.close()


def authorization(challenge_value: str, number: str, password: str, method: str,
                  uri: str) -> str:
    ch = digest.parse_challenge(challenge_value)
    cnonce, nc = "0a4f113b", "00000001"
    response = digest.compute_response(
        algorithm=ch.algorithm, username=number, realm=ch.realm, password=password,
        method=method, uri=uri, nonce=ch.nonce, qop="auth", nc=nc, cnonce=cnonce,
    )
    return (f'Digest username="{number}", realm="{ch.realm}", nonce="{ch.nonce}", '
            f'uri="{uri}", response="{response}", algorithm={ch.algorithm}, qop=auth, '
            f'nc={nc}, cnonce="{cnonce}"')


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
async def test_digest_register_then_trusted_flow(algorithm: str) -> None:
    prof = make_profile(path="profiles/lab-auth.toml")
    async with running(prof) as node:
        lst = node.listener("udp")
        a = await UE(A, (lst.host, lst.port)).start()
        b = await UE(B, (lst.host, lst.port)).start()
        try:
            first = await b.register()
            assert first.status == 401
            challenges = first.headers.get_fields("WWW-Authenticate")
            assert [digest.parse_challenge(c).algorithm for c in challenges] == ["SHA-256", "MD5"]
            chosen = next(c for c in challenges
                          if digest.parse_challenge(c).algorithm == algorithm)
            good = authorization(chosen, B, f"lab-{B}", "REGISTER", f"sip:{DOMAIN}")
            assert (await b.register(extra=[("Authorization", good)])).status == 200
            bad = authorization(chosen, B, "wrong", "REGISTER", f"sip:{DOMAIN}")
            assert (await b.register(extra=[("Authorization", bad)])).status == 403
            # A is not registered: its MESSAGE is challenged for proxy authentication.
            resp = await a.message(B)
            assert resp.status == 407
            assert resp.headers.get("Proxy-Authenticate")
            # With credentials it goes through.
            ch = resp.headers.get_fields("Proxy-Authenticate")[0]
            cred = authorization(ch, A, f"lab-{A}", "MESSAGE", f"sip:{B}@{DOMAIN}")
            assert (await a.message(B, extra=[("Proxy-Authorization", cred)])).status == 200
            # B, registered over this flow, is trusted without credentials.
            assert (await b.message(B)).status == 200
        finally:
            a.close()
            b.close()


async def test_unknown_number_gets_403_with_auth_on() -> None:
    async with running(make_profile(path="profiles/lab-auth.toml")) as node:
        lst = node.listener("udp")
        number = "+8613700000001"
        ue = await UE(number, (lst.host, lst.port)).start()
        try:
            # Challenged like anyone (the node does not reveal which numbers exist) ...
            first = await ue.register()
            assert first.status == 401
            # ... and refused once it answers the challenge.
            cred = authorization(first.headers.get_fields("WWW-Authenticate")[0], number,
                                 "guess", "REGISTER", f"sip:{DOMAIN}")
            assert (await ue.register(extra=[("Authorization", cred)])).status == 403
        finally:
            ue.close()

"""MaaP benchmark: chatbot API → 5GMC → UE.

Default (one process): this process runs a lab Node (5GMC + MaaP + SMSC stub, memory store, no
CDRs), a webhook sink that answers every CSP notification 200 and counts the status reports in
them, and simulated UEs: many registrations whose Contacts point at a few UDP sockets in this
process, each answering every MESSAGE 200 at once, noting when it came, and — like a real UE —
sending the chatbot a delivered IMDN when the message asks for one (``--no-imdn``: not).

``--split``: the network runs as two ``fivegmc run`` processes (``[node] elements``): the 5GMC +
SMSC stub, and the MaaP alone (SIP/TCP between them, profiles/split-*.toml wiring with ephemeral
ports); this process is only the load generator (HTTP client — the lean ``fivegmc.http`` one —,
simulated UEs, webhook sink). The CPU seconds each process spent in each phase are printed too.

1. Throughput: GSMA API sends (``POST /bot/v1/labbot/messages``, one user each, OAuth2 bearer
   token) offered at ``--rate`` for ``--duration`` seconds over ``--users`` registered UEs.
   Prints offered and achieved rate, errors, latency percentiles from the API request to the
   UE's receipt of the MESSAGE (the request time, so the API's own latency is included), and
   when the last ``delivered`` report reached the CSP.
2. Campaign: one send to ``--campaign`` registered users (the profile's
   ``maap.max_destinations`` raised to fit): in one process a direct ``MaapCore.send``; with
   ``--split`` (or ``--campaign-api``) one China Telecom ``POST messages`` with every number in
   ``destinationAddress`` and ``reportRequest`` sent + delivered. Time until every UE has it and
   until the CSP has every recipient's ``delivered`` report; ``--status-batch N`` sets
   ``[maap.ctcu] status_batch`` (reports per ``deliveryInfoList`` push).

    .venv/bin/python bench/maap_bench.py --rate 5000 --duration 5 --users 2000 --campaign 100000
    .venv/bin/python bench/maap_bench.py --split --rate 5000 --duration 5 --campaign 100000
    .venv/bin/python bench/maap_bench.py --split --rate 0 --campaign 100000 --status-batch 100

Bounded: each phase stops after its duration plus a drain timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import peers  # noqa: E402  (tests/e2e/peers.py: subprocess nodes, shared with the tests)

from fivegmc.config import Profile, load_profile  # noqa: E402
from fivegmc.cpim import build_imdn_report_cpim  # noqa: E402
from fivegmc.http import HttpClient, HttpError  # noqa: E402
from fivegmc.maap.core import MaapCore  # noqa: E402
from fivegmc.maap.model import Outbound, Payload, Status  # noqa: E402
from fivegmc.net.loop import loop_factory, tune_gc  # noqa: E402
from fivegmc.node import running  # noqa: E402
from fivegmc.sip.parser import StreamFramer  # noqa: E402

DOMAIN = "ims.mnc000.mcc460.3gppnetwork.org"
TAGS = ('+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg";'
        '+g.gsma.rcs.botversion="#=1,#=2"')
FIRST = 8613800000000  # lab 5G-message numbers: +8613800000000 … +8613800099999


IMDN_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<imdn xmlns="urn:ietf:params:xml:ns:imdn">'
            "<message-id>{mid}</message-id><datetime>{when}</datetime><delivery-notification>"
            "<status><delivered /></status></delivery-notification></imdn>")
IMDN_CPIM = ("From: <{me}>\r\nTo: <{bot}>\r\nDateTime: {now}\r\nNS: imdn <urn:ietf:params:imdn>\r\n"
             "imdn.Message-ID: d{n}-{mid}\r\n\r\nContent-Type: message/imdn+xml\r\n"
             "Content-Disposition: notification\r\nContent-Length: {length}\r\n\r\n")


def _check_imdn_template() -> None:
    """The template is byte for byte what the codec builds."""
    args = {"me": "sip:+1@x", "bot": "sip:bot@y", "now": "2026-01-01T00:00:00Z", "n": 1,
            "mid": "m1"}
    xml = IMDN_XML.format(mid="m1", when="2026-01-01T00:00:00Z").encode()
    mine = IMDN_CPIM.format(length=len(xml), **args).encode() + xml
    codec = build_imdn_report_cpim(from_="sip:+1@x", to="sip:bot@y", message_id="d1-m1",
                                   datetime="2026-01-01T00:00:00Z", original_message_id="m1",
                                   original_datetime="2026-01-01T00:00:00Z", kind="delivery",
                                   status="delivered")
    if mine != codec:
        raise RuntimeError(f"IMDN template differs from the codec:\n{mine!r}\n{codec!r}")


def number(i: int) -> str:
    return f"+{FIRST + i}"


class _Flow:
    """One simulated-UE socket: a UDP socket, or a TCP connection to the 5GMC (the way an
    IMS core's trunk or a P-CSCF carries many UEs' traffic over few connections). Writes made
    in one event-loop iteration leave together."""

    def __init__(self, node: tuple[str, int], transport: str) -> None:
        self.node = node
        self.transport_name = transport
        self.transport: asyncio.BaseTransport | None = None
        self.port = 0
        self._out: list[bytes] = []

    def send(self, data: bytes) -> None:
        if self.transport_name == "udp":
            cast(asyncio.DatagramTransport, self.transport).sendto(data, self.node)
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        chunks, self._out = self._out, []
        t = cast(asyncio.Transport, self.transport)
        if chunks and not t.is_closing():
            t.writelines(chunks)


class _UdpProto(asyncio.DatagramProtocol):
    def __init__(self, ues: Ues, flow: _Flow) -> None:
        self.ues, self.flow = ues, flow

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.ues._on(data, self.flow)


class _StreamProto(asyncio.Protocol):
    def __init__(self, ues: Ues, flow: _Flow) -> None:
        self.ues, self.flow = ues, flow
        self.framer = StreamFramer(1 << 20)

    def data_received(self, data: bytes) -> None:
        for msg in self.framer.feed(data):
            self.ues._on(msg, self.flow)


@dataclass
class Ues:
    """Simulated UEs on a few UDP sockets (or TCP connections): REGISTER, then answer
    MESSAGEs 200."""

    node: tuple[str, int]
    sockets: int = 4
    transport: str = "udp"
    received: dict[str, float] = field(default_factory=dict)  # imdn.Message-ID#number -> t
    count: int = 0
    registered: set[str] = field(default_factory=set)
    _flows: list[_Flow] = field(default_factory=list)
    track: bool = True
    #: answer a MESSAGE asking positive-delivery with a delivered IMDN (as a real UE does)
    imdn: bool = True
    imdns_sent: int = 0
    imdns_retried: int = 0
    _imdns: dict[bytes, bytes] = field(default_factory=dict)  # Call-ID -> IMDN request, until 2xx

    async def start(self) -> None:
        _check_imdn_template()
        loop = asyncio.get_running_loop()
        ues = self
        for _ in range(self.sockets):
            flow = _Flow(self.node, self.transport)
            transport: asyncio.BaseTransport
            if self.transport == "udp":
                transport, _ = await loop.create_datagram_endpoint(
                    lambda f=flow: _UdpProto(ues, f), local_addr=("127.0.0.1", 0))
            else:
                transport, _ = await loop.create_connection(
                    lambda f=flow: _StreamProto(ues, f), *self.node)
            flow.transport = transport
            flow.port = transport.get_extra_info("sockname")[1]
            self._flows.append(flow)

    def _on(self, data: bytes, flow: _Flow) -> None:
        now = time.perf_counter()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if lines[0].startswith(b"SIP/2.0 "):
            call_id = next((ln[8:].strip() for ln in lines if ln[:8] == b"Call-ID:"), b"")
            imdn = self._imdns.pop(call_id, None)
            if imdn is not None:
                if lines[0][8:11] in (b"503", b"408", b"500"):  # shed: again after Retry-After
                    self.imdns_retried += 1
                    again = imdn.replace(b";branch=z9hG4bK", b";branch=z9hG4bKr", 1)
                    self._imdns[call_id] = again
                    asyncio.get_running_loop().call_later(1.0, flow.send, again)
                return
            if lines[0][8:11] == b"200":
                for line in lines:
                    if line[:3] == b"To:":
                        self.registered.add(line.split(b"sip:", 1)[1].split(b"@", 1)[0].decode())
            return
        keep = [ln for ln in lines[1:] if ln[:4] in (b"Via:", b"From", b"Call", b"CSeq")]
        to = next((ln for ln in lines if ln[:3] == b"To:"), b"To: <sip:x@x>")
        reply = b"\r\n".join([b"SIP/2.0 200 OK", *keep, to + b";tag=ue", b"Content-Length: 0",
                              b"", b""])
        flow.send(reply)
        if lines[0].startswith(b"MESSAGE"):
            self.count += 1
            user = lines[0].split(b"sip:", 1)[1].split(b"@", 1)[0]
            i = body.find(b"imdn.Message-ID: ")
            mid = body[i + 17: body.index(b"\r\n", i)] if i >= 0 else b""
            if self.track and mid:
                self.received[(mid + b"#" + user).decode()] = now
            if self.imdn and mid and b"positive-delivery" in body:
                frm = next((ln for ln in lines if ln[:5] == b"From:"), b"")
                bot = frm[frm.find(b"<") + 1: frm.find(b">")].decode()
                self._delivered(flow, user.decode(), bot, body, mid.decode())

    def _delivered(self, flow: _Flow, user: str, bot: str, body: bytes, mid: str) -> None:
        """A delivered IMDN (RFC 5438 §7.1.1) for ``mid`` from ``user`` to the chatbot."""
        i = body.find(b"DateTime: ")
        original = body[i + 10: body.index(b"\r\n", i)].decode() if i >= 0 else ""
        self.imdns_sent += 1
        n = self.imdns_sent
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        me = f"sip:{user}@{DOMAIN}"
        # The shape build_imdn_report_cpim gives (checked once in start()), from a template:
        # the load generator's CPU is not what is measured.
        xml = IMDN_XML.format(mid=mid, when=original or now).encode()
        cpim = IMDN_CPIM.format(me=me, bot=bot, now=now, n=n, mid=mid,
                                length=len(xml)).encode() + xml
        head = (f"MESSAGE {bot} SIP/2.0\r\n"
                f"Via: SIP/2.0/{flow.transport_name.upper()} 127.0.0.1:{flow.port};"
                f"branch=z9hG4bKd{n}x{user};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <{me}>;tag=d{n}\r\nTo: <{bot}>\r\n"
                f"Call-ID: d{n}-{user}\r\nCSeq: 1 MESSAGE\r\n"
                f"Content-Type: message/cpim\r\nContent-Length: {len(cpim)}\r\n\r\n")
        request = head.encode() + cpim
        self._imdns[f"d{n}-{user}".encode()] = request
        flow.send(request)

    async def register(self, numbers: list[str], window: int = 400) -> None:
        """REGISTER every number (Contact on one of the sockets), retrying the unanswered."""
        for _ in range(5):
            missing = [n for n in numbers if n not in self.registered]
            if not missing:
                return
            for start in range(0, len(missing), window):
                for k, n in enumerate(missing[start:start + window]):
                    flow = self._flows[(start + k) % len(self._flows)]
                    port = flow.port
                    tp = flow.transport_name
                    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
                    req = (f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
                           f"Via: SIP/2.0/{tp.upper()} 127.0.0.1:{port};branch={branch};rport\r\n"
                           f"Max-Forwards: 70\r\nFrom: <sip:{n}@{DOMAIN}>;tag=b{k}\r\n"
                           f"To: <sip:{n}@{DOMAIN}>\r\nCall-ID: {branch}\r\n"
                           f"CSeq: 1 REGISTER\r\n"
                           f"Contact: <sip:{n}@127.0.0.1:{port};transport={tp}>;{TAGS}\r\n"
                           f"Expires: 3600\r\nContent-Length: 0\r\n\r\n")
                    flow.send(req.encode())
                deadline = time.monotonic() + 2
                want = min(len(numbers), len(self.registered) + window)
                while len(self.registered) < want and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
        missing = [n for n in numbers if n not in self.registered]
        if missing:
            raise RuntimeError(f"{len(missing)} registrations unanswered")

    def close(self) -> None:
        for f in self._flows:
            if f.transport is not None:
                f.transport.close()


@dataclass
class Sink:
    """What the CSP's webhook receiver got: POSTs, and status reports by token (CT/CU
    ``deliveryInfoList`` entries, GSMA ``messageStatus`` events)."""

    posts: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)  # token -> when the latest came

    def note(self, body: bytes) -> None:
        now = time.perf_counter()
        doc = json.loads(body)
        infos = doc.get("deliveryInfoList")
        if infos is None:  # GSMA: {"event": "messageStatus", "RCSMessage": {"status": …}}
            status = (doc.get("RCSMessage") or {}).get("status")
            infos = [{"status": status}] if doc.get("event") == "messageStatus" else []
        for info in infos:
            token = str(info.get("status"))
            self.statuses[token] = self.statuses.get(token, 0) + 1
            self.last[token] = now


class _SinkProtocol(asyncio.Protocol):
    """The CSP's webhook receiver, kept lean so the load generator leaves the 2 cores to the
    network under test: HTTP/1.1 keep-alive requests framed by Content-Length (what the MaaP's
    client sends; anything else closes the connection), each answered ``200 {}``."""

    OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    def __init__(self, got: Sink) -> None:
        self.got = got
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out: list[bytes] = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            n = 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    n = int(value)
                elif name == b"transfer-encoding":  # never sent by the MaaP: refuse
                    assert self.transport is not None
                    self.transport.close()
                    return
            if len(self.buf) < end + 4 + n:
                break
            body = self.buf[end + 4: end + 4 + n]
            self.buf = self.buf[end + 4 + n:]
            self.got.posts += 1
            if b"status" in body:
                self.got.note(body)
            out.append(self.OK)
        if out and self.transport is not None:
            self.transport.writelines(out)


async def sink() -> tuple[asyncio.Server, str, Sink]:
    got = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: _SinkProtocol(got),
                                                            "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", got


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


@dataclass
class Target:
    """The network under load, however it runs: the 5GMC's UDP address (for the UEs), the MaaP's
    HTTP base and admin base, the profile (chatbot credentials), and in one process the
    MaaP core itself."""

    udp: tuple[str, int]
    base: str
    admin: str
    profile: Profile
    core: MaapCore | None = None
    cpu: Callable[[], dict[str, float]] = lambda: {}
    mode: str = "one process"


def cpu_delta(before: dict[str, float], after: dict[str, float], wall: float,
              messages: int) -> str:
    """CPU each process spent: seconds, share of one core, and µs per message delivered."""
    if not before:
        return ""
    parts = [f"{k} {after[k] - before[k]:.1f} s ({(after[k] - before[k]) / wall:.0%}, "
             f"{(after[k] - before[k]) / max(messages, 1) * 1e6:.0f} µs/msg)" for k in before]
    return "  CPU over the phase: " + ", ".join(parts)


async def throughput(target: Target, ues: Ues, users: int, rate: float,
                     duration: float, sink_got: Sink, per_request: int = 1) -> None:
    """``per_request`` 1: GSMA sends, one user each; above 1: CT/CU sends with that many
    numbers in ``destinationAddress`` (the offered rate is still in messages per second)."""
    base = target.base
    if per_request <= 1:
        bot = next(b for b in target.profile.maap.chatbots if b.id == "labbot")
        basic = base64.b64encode(f"{bot.app_id}:{bot.secret}".encode()).decode()
        async with aiohttp.ClientSession() as http, http.post(
                f"{base}/oauth2/v1/token",
                data={"grant_type": "client_credentials", "scope": "botmessage"},
                headers={"Authorization": f"Basic {basic}"}) as resp:
            token = (await resp.json())["access_token"]
        url = f"{base}/bot/v1/labbot/messages"
        auth = (("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"))
    else:
        bot = next(b for b in target.profile.maap.chatbots if b.dialect == "ctcu")
        async with aiohttp.ClientSession() as http, http.post(
                f"{base}/bot/v1/{bot.id}/accessToken",
                json={"appId": bot.app_id, "appKey": bot.secret}) as resp:
            token = (await resp.json())["accessToken"]
        url = f"{base}/bot/v1/{quote(bot.uri, safe='')}/messages"
        auth = (("Authorization", f"accessToken {token}"),
                ("Content-Type", "application/json"))
    # the load generator's own HTTP client is the lean one (fivegmc.http): ≈ 1/3 of aiohttp's
    # CPU per request, so more of the 2 cores are left to the network under test
    http = HttpClient(max_connections_per_origin=256)
    try:
        sent_at: dict[str, float] = {}
        errors: dict[str, int] = {}
        total = int(rate * duration / per_request)  # requests
        rate = rate / per_request  # requests per second
        pending: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            mid = uuid.uuid4().hex
            first = i * per_request
            numbers = [number((first + k) % users) for k in range(per_request)]
            keys = [f"{mid}#{n}" for n in numbers]
            now = time.perf_counter()
            for key in keys:
                sent_at[key] = now
            if per_request <= 1:
                body = json.dumps({"RCSMessage": {"msgId": mid, "textMessage": f"bench {i}"},
                                   "messageContact": {"userContact": numbers[0]}}).encode()
            else:
                body = json.dumps({
                    "messageId": mid, "senderAddress": bot.uri,
                    "destinationAddress": [f"tel:{n}" for n in numbers],
                    "messageList": [{"contentType": "text/plain", "contentEncoding": "utf8",
                                     "contentText": f"bench {i}"}],
                    "reportRequest": ["sent", "delivered"]}).encode()
            try:
                resp = await http.post(url, body, auth, timeout_s=30)
                bad = resp.status >= 300 or (per_request > 1
                                             and json.loads(resp.body).get("errorCode") != 0)
                if bad:
                    errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                    for key in keys:
                        sent_at.pop(key, None)
            except (HttpError, OSError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                for key in keys:
                    sent_at.pop(key, None)

        cpu0 = target.cpu()
        delivered0 = sink_got.statuses.get("delivered", 0)
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(pending) >= 2000:  # bounded in-flight: beyond it the offer falls behind
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(one(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
        offered_s = time.perf_counter() - start
        if pending:
            await asyncio.wait(pending, timeout=30)
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline and not set(sent_at) <= set(ues.received):
            await asyncio.sleep(0.05)
        while (ues.imdn and time.perf_counter() < deadline
               and sink_got.statuses.get("delivered", 0) - delivered0 < len(sent_at)):
            await asyncio.sleep(0.05)
        reported = sink_got.statuses.get("delivered", 0) - delivered0
        got = [ues.received[k] - t for k, t in sent_at.items() if k in ues.received]
        last = max((ues.received[k] for k in sent_at if k in ues.received), default=start)
        how = ("GSMA, one user per request" if per_request <= 1
               else f"CT/CU, {per_request} users per request")
        print(f"throughput ({target.mode}; {how}): offered {total * per_request} at "
              f"{total * per_request / offered_s:.0f}/s ({rate * per_request:.0f}/s asked), "
              f"{len(got)} received by UEs in {last - start:.2f} s "
              f"→ achieved {len(got) / (last - start):.0f} msgs/s; "
              f"lost {len(sent_at) - len(got)}; API errors {errors or 0}")
        if ues.imdn:
            at = sink_got.last.get("delivered", start) - start
            print(f"  'delivered' reports at the CSP: {reported} of {len(sent_at)}, the last "
                  f"{at:.2f} s after the first send → {reported / max(at, 1e-9):.0f}/s")
        if got:
            ms = [g * 1000 for g in got]
            print(f"  API request → UE receipt ms: p50 {pct(ms, 50):.1f}  p90 {pct(ms, 90):.1f}"
                  f"  p99 {pct(ms, 99):.1f}  max {max(ms):.1f}  mean {statistics.mean(ms):.1f}")
        if cpu0:
            print(cpu_delta(cpu0, target.cpu(), time.perf_counter() - start, len(got)))
    finally:
        await http.close()


async def campaign_api(target: Target, numbers: tuple[str, ...]) -> tuple[str, str, int]:
    """One China Telecom ``POST messages`` to every number; (bot id, messageId, accepted)."""
    bot = next(b for b in target.profile.maap.chatbots if b.dialect == "ctcu")
    mid = "campaign-" + uuid.uuid4().hex
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{target.base}/bot/v1/{bot.id}/accessToken",
                             json={"appId": bot.app_id, "appKey": bot.secret}) as resp:
            token = (await resp.json())["accessToken"]
        body = {"messageId": mid, "senderAddress": bot.uri,
                "destinationAddress": [f"tel:{n}" for n in numbers],
                "messageList": [{"contentType": "text/plain", "contentEncoding": "utf8",
                                 "contentText": "campaign"}],
                "smsSupported": False, "storeSupported": True,
                "reportRequest": ["sent", "delivered", "failed"]}
        async with http.post(f"{target.base}/bot/v1/{quote(bot.uri, safe='')}/messages",
                             json=body, headers={"Authorization": f"accessToken {token}",
                                                 "Content-Type": "application/json"}) as resp:
            answer = await resp.json()
            if resp.status != 200 or answer.get("errorCode") != 0:
                raise RuntimeError(f"campaign send answered {resp.status} {answer}")
    return bot.id, mid, len(numbers)


async def recipient_states(target: Target, bot_id: str, mid: str) -> dict[str, int]:
    if target.core is not None:
        rec = target.core.record(bot_id, mid)
        statuses = [r.status.value for r in rec.recipients] if rec is not None else []
    else:
        async with aiohttp.ClientSession() as http, http.get(
                f"{target.admin}/admin/v1/chatbots/{bot_id}/messages/{mid}") as resp:
            doc = await resp.json() if resp.status == 200 else {"recipients": []}
        statuses = [r["status"] for r in doc["recipients"]]
    states: dict[str, int] = {}
    for st in statuses:
        states[st] = states.get(st, 0) + 1
    return states


async def campaign(target: Target, ues: Ues, size: int, via_api: bool, got: Sink) -> None:
    ues.track = False
    before = ues.count
    delivered0 = got.statuses.get("delivered", 0)
    numbers = tuple(number(i) for i in range(size))
    cpu0 = target.cpu()
    start = time.perf_counter()
    if via_api or target.core is None:
        bot_id, mid, accepted_n = await campaign_api(target, numbers)
        how = "one CT/CU POST messages"
    else:
        bot_id, mid = "labbot", "campaign-" + uuid.uuid4().hex
        result = await target.core.send(Outbound(bot_id, numbers,
                                                 Payload("text/plain", b"campaign"), mid))
        accepted_n = sum(1 for _, s, _ in result.recipients if s is Status.ACCEPTED)
        how = "one MaapCore.send"
    accepted = time.perf_counter() - start
    all_received = all_reported = None
    want_reports = ues.imdn
    deadline = start + 150
    while time.perf_counter() < deadline:
        now = time.perf_counter()
        if all_received is None and ues.count - before >= size:
            all_received = now - start
        if (all_reported is None and want_reports
                and got.statuses.get("delivered", 0) - delivered0 >= size):
            all_reported = got.last["delivered"] - start
        if all_received is not None and (all_reported is not None or not want_reports):
            break
        await asyncio.sleep(0.02)
    wall = time.perf_counter() - start
    await asyncio.sleep(1.0)  # the last reports (and the MaaP's state writes) settle
    states = await recipient_states(target, bot_id, mid)
    print(f"campaign ({target.mode}, {how}): {size} recipients accepted in {accepted:.2f} s "
          f"({accepted_n} accepted); all at the UEs after "
          f"{all_received if all_received is None else round(all_received, 2)} s; "
          + (f"every 'delivered' report at the CSP after "
             f"{all_reported if all_reported is None else round(all_reported, 2)} s "
             f"({ues.imdns_sent} delivered IMDNs sent by the UEs, {ues.imdns_retried} "
             f"sent again after a 503); " if want_reports else "")
          + f"recipient states {states}")
    if cpu0:
        print(cpu_delta(cpu0, target.cpu(), wall, size))


def overrides(args: argparse.Namespace, data: str, sink_url: str) -> list[str]:
    sets = [
        "admin.enabled=false", "maap.port=0", "maap.sip_port=0", f'maap.data_dir="{data}"',
        "store.kind=memory", "cdr.enabled=false", "log.level=WARNING",
        "registrar.max_expires=7200", f"maap.max_destinations={max(args.campaign, 10000)}",
        f"maap.max_body_bytes={max(256000, 40 * args.campaign)}",
        f"maap.ctcu.status_batch={args.status_batch}",
        *args.set,
    ]
    lab = load_profile(None)
    sets += [f"maap.chatbots[{i}].rate_limit_per_s=1000000" for i in range(len(lab.maap.chatbots))]
    sets += [f'maap.chatbots[{i}].webhook="{sink_url}/{b.dialect}/{b.id}"'
             for i, b in enumerate(lab.maap.chatbots)]
    return sets


@contextlib.asynccontextmanager
async def in_process(args: argparse.Namespace, data: str, sink_url: str
                     ) -> AsyncIterator[Target]:
    sets = ["sip.udp_port=0", "sip.tcp_port=0", *overrides(args, data, sink_url)]
    profile = load_profile(None, sets)
    async with running(profile) as node:
        assert node.maap is not None
        udp = node.listener("udp")
        host, port = node.maap.http_address
        yield Target((udp.host, udp.port), f"http://{host}:{port}", "", profile,
                     core=node.maap.core, mode=f"one process, pid {os.getpid()}")


@contextlib.asynccontextmanager
async def split(args: argparse.Namespace, data: str, sink_url: str) -> AsyncIterator[Target]:
    """Two ``fivegmc run`` processes: 5GMC + SMSC, and the MaaP (profiles/split-*.toml)."""
    work = Path(data)
    smsc, maap_sip, maap_http = peers.free_ports(3)
    common = [s for s in overrides(args, str(work / "maap-data"), sink_url)
              if not s.startswith(("admin.", "maap.port", "maap.sip_port"))]
    center_profile = ROOT / "profiles" / "split-center.toml"
    maap_profile = ROOT / "profiles" / "split-maap.toml"
    bots = load_profile(maap_profile).maap.chatbots
    hop = f"sip:127.0.0.1:{maap_sip};transport=tcp"
    domains = dict.fromkeys(b.uri.split("@", 1)[1] for b in bots)
    routes = "routes=[" + ", ".join(f'{{domain="{d}", next_hop="{hop}"}}'
                                    for d in domains) + "]"
    center = peers.fivegmc_node(work / "center", profile=center_profile, extra_sets=[
        f"smsc.port={smsc}", routes, "store.kind=memory", "cdr.enabled=false",
        "registrar.max_expires=7200"])
    center.name = "center"
    maap = peers.fivegmc_node(work / "maap", profile=maap_profile, extra_sets=[
        *common, f"maap.port={maap_http}", f"maap.sip_port={maap_sip}",
        f'maap.center="sip:127.0.0.1:{center.sip_port};transport=tcp"',
        f"maap.sms.port={smsc}"])
    maap.name = "maap"
    profile = load_profile(maap_profile, [*common, f"maap.port={maap_http}"])
    await asyncio.to_thread(center.start)
    try:
        await asyncio.to_thread(maap.start)
        try:
            def cpu() -> dict[str, float]:
                return {"5GMC+SMSC": center.cpu_seconds(), "MaaP": maap.cpu_seconds(),
                        "load generator": time.process_time()}

            yield Target(("127.0.0.1", center.sip_port), f"http://127.0.0.1:{maap_http}",
                         f"http://127.0.0.1:{maap.admin_port}", profile, cpu=cpu,
                         mode=f"split: 5GMC+SMSC pid {center.pid}, MaaP pid {maap.pid}, "
                              f"load generator pid {os.getpid()}")
        finally:
            if maap.stop() != 0 or args.logs:
                print(maap.logs())
    finally:
        if center.stop() != 0 or args.logs:
            print(center.logs())


async def main(args: argparse.Namespace) -> None:
    runner, sink_url, got = await sink()
    with tempfile.TemporaryDirectory(prefix="maap-bench-") as data:
        network = split if args.split else in_process
        async with network(args, data, sink_url) as target:
            tune_gc()
            ues = Ues(target.udp, sockets=args.sockets, transport=args.ue_transport,
                      imdn=not args.no_imdn)
            await ues.start()
            t = time.perf_counter()
            await ues.register([number(i) for i in range(max(args.users, args.campaign))])
            print(f"registered {len(ues.registered)} UEs in {time.perf_counter() - t:.1f} s "
                  f"on {args.sockets} {args.ue_transport.upper()} flows; {target.mode}")
            if args.rate > 0:
                await throughput(target, ues, args.users, args.rate, args.duration, got,
                                 args.per_request)
            if args.campaign:
                await campaign(target, ues, args.campaign, args.campaign_api, got)
            await asyncio.sleep(0.5)
            print(f"webhook POSTs received by the sink: {got.posts}; status reports "
                  f"{dict(sorted(got.statuses.items()))}")
            ues.close()
    runner.close()
    await runner.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000, help="offered API sends per second")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of offered load")
    parser.add_argument("--users", type=int, default=2000, help="UEs the sends cycle over")
    parser.add_argument("--campaign", type=int, default=100000,
                        help="recipients of the mass send (0: skip)")
    parser.add_argument("--sockets", type=int, default=4,
                        help="UDP sockets (or TCP connections) for the UEs")
    parser.add_argument("--ue-transport", choices=("udp", "tcp"), default="udp",
                        help="the UEs' SIP transport: udp (a few sockets), or tcp (a few "
                             "connections to the 5GMC, each carrying many UEs, as an IMS "
                             "core's trunk does)")
    parser.add_argument("--split", action="store_true",
                        help="run the 5GMC+SMSC and the MaaP as two fivegmc run processes")
    parser.add_argument("--no-imdn", action="store_true",
                        help="UEs do not answer delivered IMDNs (by default they do, when asked)")
    parser.add_argument("--status-batch", type=int, default=1,
                        help="maap.ctcu.status_batch: status reports per CT/CU push")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="profile override for the MaaP (repeatable), e.g. "
                             "maap.fanout_concurrency=512")
    parser.add_argument("--per-request", type=int, default=1,
                        help="throughput phase: users per API request (1: GSMA sends; more: "
                             "CT/CU sends with that many destinationAddress numbers)")
    parser.add_argument("--logs", action="store_true",
                        help="--split: print the tail of both nodes' logs at the end")
    parser.add_argument("--campaign-api", action="store_true",
                        help="send the campaign through the CT/CU API in one process too")
    factory, _ = loop_factory()
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as r:
        r.run(main(parser.parse_args()))

"""MaaP benchmark: chatbot API → 5GMC → UE.

One process runs a lab Node (5GMC + MaaP, memory store, no CDRs), a webhook sink that answers
every CSP notification 200, and simulated UEs: many registrations whose Contacts point at a few
UDP sockets in this process, each answering every MESSAGE 200 at once and noting when it came.

1. Throughput: GSMA API sends (``POST /bot/v1/labbot/messages``, one user each, OAuth2 bearer
   token) offered at ``--rate`` for ``--duration`` seconds over ``--users`` registered UEs.
   Prints offered and achieved rate, errors, and latency percentiles from the API request to
   the UE's receipt of the MESSAGE (the request time, so the API's own latency is included).
2. Campaign: one ``MaapCore.send`` to ``--campaign`` registered users (the profile's
   ``maap.max_destinations`` raised to fit); time until every UE has it and until every
   recipient's state is past ``accepted`` (SENT: the 5GMC's 200 came back).

    .venv/bin/python bench/maap_bench.py --rate 5000 --duration 5 --users 2000 --campaign 100000

Bounded: each phase stops after its duration plus a drain timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fivegmc.config import load_profile
from fivegmc.maap.model import Outbound, Payload, Status
from fivegmc.net.loop import loop_factory, tune_gc
from fivegmc.node import Node, running

DOMAIN = "ims.mnc000.mcc460.3gppnetwork.org"
TAGS = ('+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg";'
        '+g.gsma.rcs.botversion="#=1,#=2"')
FIRST = 8613800000000  # lab 5G-message numbers: +8613800000000 … +8613800099999


def number(i: int) -> str:
    return f"+{FIRST + i}"


@dataclass
class Ues:
    """Simulated UEs on a few UDP sockets: REGISTER, then answer MESSAGEs 200."""

    node: tuple[str, int]
    sockets: int = 4
    received: dict[str, float] = field(default_factory=dict)  # imdn.Message-ID#number -> t
    count: int = 0
    registered: set[str] = field(default_factory=set)
    _transports: list[asyncio.DatagramTransport] = field(default_factory=list)
    _ports: list[int] = field(default_factory=list)
    track: bool = True

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ues = self
        for _ in range(self.sockets):
            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
                    ues._on(data, self.transport)  # type: ignore[attr-defined]

                def connection_made(self, transport: asyncio.BaseTransport) -> None:
                    self.transport = transport

            transport, _ = await loop.create_datagram_endpoint(Proto,
                                                               local_addr=("127.0.0.1", 0))
            self._transports.append(transport)  # type: ignore[arg-type]
            self._ports.append(transport.get_extra_info("sockname")[1])

    def _on(self, data: bytes, transport: asyncio.DatagramTransport) -> None:
        now = time.perf_counter()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if lines[0].startswith(b"SIP/2.0 "):
            if lines[0][8:11] == b"200":
                for line in lines:
                    if line[:3] == b"To:":
                        self.registered.add(line.split(b"sip:", 1)[1].split(b"@", 1)[0].decode())
            return
        keep = [ln for ln in lines[1:] if ln[:4] in (b"Via:", b"From", b"Call", b"CSeq")]
        to = next((ln for ln in lines if ln[:3] == b"To:"), b"To: <sip:x@x>")
        reply = b"\r\n".join([b"SIP/2.0 200 OK", *keep, to + b";tag=ue", b"Content-Length: 0",
                              b"", b""])
        transport.sendto(reply, self.node)
        if lines[0].startswith(b"MESSAGE"):
            self.count += 1
            if self.track:
                i = body.find(b"imdn.Message-ID: ")
                user = lines[0].split(b"sip:", 1)[1].split(b"@", 1)[0]
                if i >= 0:
                    mid = body[i + 17: body.index(b"\r\n", i)]
                    self.received[(mid + b"#" + user).decode()] = now

    async def register(self, numbers: list[str], window: int = 400) -> None:
        """REGISTER every number (Contact on one of the sockets), retrying the unanswered."""
        for _ in range(5):
            missing = [n for n in numbers if n not in self.registered]
            if not missing:
                return
            for start in range(0, len(missing), window):
                for k, n in enumerate(missing[start:start + window]):
                    s = (start + k) % len(self._transports)
                    port = self._ports[s]
                    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
                    req = (f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
                           f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
                           f"Max-Forwards: 70\r\nFrom: <sip:{n}@{DOMAIN}>;tag=b{k}\r\n"
                           f"To: <sip:{n}@{DOMAIN}>\r\nCall-ID: {branch}\r\n"
                           f"CSeq: 1 REGISTER\r\nContact: <sip:{n}@127.0.0.1:{port}>;{TAGS}\r\n"
                           f"Expires: 3600\r\nContent-Length: 0\r\n\r\n")
                    self._transports[s].sendto(req.encode(), self.node)
                deadline = time.monotonic() + 2
                want = min(len(numbers), len(self.registered) + window)
                while len(self.registered) < want and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
        missing = [n for n in numbers if n not in self.registered]
        if missing:
            raise RuntimeError(f"{len(missing)} registrations unanswered")

    def close(self) -> None:
        for t in self._transports:
            t.close()


async def sink() -> tuple[web.AppRunner, str, list[int]]:
    hits = [0]

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        hits[0] += 1
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    port = sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}", hits


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def throughput(node: Node, ues: Ues, users: int, rate: float, duration: float) -> None:
    maap = node.maap
    assert maap is not None
    host, port = maap.http_address
    base = f"http://{host}:{port}"
    bot = maap.core.bot("labbot")
    assert bot is not None
    basic = base64.b64encode(f"{bot.app_id}:{bot.secret}".encode()).decode()
    conn = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=conn) as http:
        async with http.post(f"{base}/oauth2/v1/token",
                             data={"grant_type": "client_credentials", "scope": "botmessage"},
                             headers={"Authorization": f"Basic {basic}"}) as resp:
            token = (await resp.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        sent_at: dict[str, float] = {}
        errors: dict[str, int] = {}
        total = int(rate * duration)
        pending: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            mid = uuid.uuid4().hex
            user = number(i % users)
            key = f"{mid}#{user}"
            sent_at[key] = time.perf_counter()
            body = {"RCSMessage": {"msgId": mid, "textMessage": f"bench {i}"},
                    "messageContact": {"userContact": user}}
            try:
                async with http.post(f"{base}/bot/v1/labbot/messages", json=body,
                                     headers=auth) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                        sent_at.pop(key, None)
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                sent_at.pop(key, None)

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
        got = [ues.received[k] - t for k, t in sent_at.items() if k in ues.received]
        last = max((ues.received[k] for k in sent_at if k in ues.received), default=start)
        print(f"throughput: offered {total} at {total / offered_s:.0f}/s "
              f"({rate:.0f}/s asked), {len(got)} received by UEs in {last - start:.2f} s "
              f"→ achieved {len(got) / (last - start):.0f} msgs/s; "
              f"lost {len(sent_at) - len(got)}; API errors {errors or 0}")
        if got:
            ms = [g * 1000 for g in got]
            print(f"  API request → UE receipt ms: p50 {pct(ms, 50):.1f}  p90 {pct(ms, 90):.1f}"
                  f"  p99 {pct(ms, 99):.1f}  max {max(ms):.1f}  mean {statistics.mean(ms):.1f}")


async def campaign(node: Node, ues: Ues, size: int) -> None:
    maap = node.maap
    assert maap is not None
    core = maap.core
    ues.track = False
    before = ues.count
    numbers = tuple(number(i) for i in range(size))
    mid = "campaign-" + uuid.uuid4().hex
    start = time.perf_counter()
    result = await core.send(Outbound("labbot", numbers, Payload("text/plain", b"campaign"),
                                      mid))
    accepted = time.perf_counter() - start
    all_received = all_sent = None
    deadline = start + 120
    while time.perf_counter() < deadline:
        now = time.perf_counter()
        if all_received is None and ues.count - before >= size:
            all_received = now - start
        if all_sent is None and all_received is not None:
            rec = core.record("labbot", mid)
            if rec is not None and all(r.status is not Status.ACCEPTED
                                       for r in rec.recipients):
                all_sent = time.perf_counter() - start
        if all_received is not None and all_sent is not None:
            break
        await asyncio.sleep(0.02)
    rec = core.record("labbot", mid)
    states: dict[str, int] = {}
    for r in rec.recipients if rec else ():
        states[r.status.value] = states.get(r.status.value, 0) + 1
    print(f"campaign: {size} recipients accepted in {accepted:.2f} s "
          f"({sum(1 for _, s, _ in result.recipients if s is Status.ACCEPTED)} ACCEPTED); "
          f"all at the UEs after {all_received if all_received is None else round(all_received, 2)}"
          f" s; every state past accepted after "
          f"{all_sent if all_sent is None else round(all_sent, 2)} s; states {states}")


async def main(args: argparse.Namespace) -> None:
    runner, sink_url, hits = await sink()
    with tempfile.TemporaryDirectory(prefix="maap-bench-") as data:
        overrides = [
            "sip.udp_port=0", "sip.tcp_port=0", "admin.enabled=false", "maap.port=0",
            "maap.sip_port=0", f'maap.data_dir="{data}"', "store.kind=memory",
            "cdr.enabled=false", "log.level=WARNING", "registrar.max_expires=7200",
            f"maap.max_destinations={max(args.campaign, 10000)}",
            "maap.chatbots[0].rate_limit_per_s=1000000",
        ]
        lab = load_profile(None, overrides)
        overrides += [f'maap.chatbots[{i}].webhook="{sink_url}/{b.dialect}/{b.id}"'
                      for i, b in enumerate(lab.maap.chatbots)]
        profile = load_profile(None, overrides)
        async with running(profile) as node:
            tune_gc()
            udp = node.listener("udp")
            ues = Ues((udp.host, udp.port), sockets=args.sockets)
            await ues.start()
            t = time.perf_counter()
            await ues.register([number(i) for i in range(max(args.users, args.campaign))])
            print(f"registered {len(ues.registered)} UEs in {time.perf_counter() - t:.1f} s "
                  f"on {args.sockets} UDP sockets; one process, pid {os.getpid()}")
            if args.rate > 0 and "gsma" in (node.maap.dialects if node.maap else {}):
                await throughput(node, ues, args.users, args.rate, args.duration)
            if args.campaign:
                await campaign(node, ues, args.campaign)
            await asyncio.sleep(0.5)
            print(f"webhook POSTs received by the sink: {hits[0]}")
            ues.close()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000, help="offered API sends per second")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of offered load")
    parser.add_argument("--users", type=int, default=2000, help="UEs the sends cycle over")
    parser.add_argument("--campaign", type=int, default=100000,
                        help="recipients of the mass send (0: skip)")
    parser.add_argument("--sockets", type=int, default=4, help="UDP sockets for the UEs")
    factory, _ = loop_factory()
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as r:
        r.run(main(parser.parse_args()))

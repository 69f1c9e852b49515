"""A minimal SIP user agent for end-to-end tests: REGISTER, MESSAGE, OPTIONS over UDP or TCP,
and an auto-answering UAS side that records what it receives. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from fivegmc.sip.headers import Headers
from fivegmc.sip.message import Request, Response, make_response
from fivegmc.sip.parser import StreamFramer, parse_message

DOMAIN = "ims.mnc000.mcc460.3gppnetwork.org"
RCS_TAGS = (
    '+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg,'
    'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session";'
    '+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp"'
)

CPIM = (
    "From: <sip:{frm}@" + DOMAIN + ">\r\n"
    "To: <sip:{to}@" + DOMAIN + ">\r\n"
    "DateTime: 2026-11-21T12:00:00Z\r\n"
    "NS: imdn <urn:ietf:params:imdn>\r\n"
    "imdn.Message-ID: {mid}\r\n"
    "imdn.Disposition-Notification: {disp}\r\n"
    "\r\n"
    "Content-Type: text/plain;charset=UTF-8\r\n"
    "Content-Length: {n}\r\n"
    "\r\n"
    "{text}"
)


async def wait_for(cond: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll ``cond`` until it holds (bounded by ``timeout``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


def cpim_body(frm: str, to: str, text: str, mid: str | None = None,
              disposition: str = "positive-delivery, display") -> bytes:
    raw = text.encode()
    return CPIM.format(frm=frm, to=to, mid=mid or uuid.uuid4().hex, n=len(raw),
                       text=text, disp=disposition).encode()


@dataclass
class UE:
    """One simulated handset. ``answer`` is the status it answers incoming MESSAGEs with
    (None: never answer, to test timeouts)."""

    number: str
    node: tuple[str, int]
    transport: str = "udp"
    answer: int | None = 200
    answer_delay: float = 0.0  # answer MESSAGEs this much later (a slow or sleeping UE)
    received: list[Request] = field(default_factory=list)
    _pending: dict[str, asyncio.Future[Response]] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _udp: asyncio.DatagramTransport | None = None
    _writer: asyncio.StreamWriter | None = None
    _reader_task: asyncio.Task[None] | None = None
    local: tuple[str, int] = ("127.0.0.1", 0)
    got_message: asyncio.Event = field(default_factory=asyncio.Event)
    raw_log: list[bytes] = field(default_factory=list)

    async def start(self) -> UE:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            ue = self

            class _Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
                    ue._on_data(data, (str(addr[0]), int(addr[1])))

            transport, _ = await loop.create_datagram_endpoint(
                _Proto, local_addr=("127.0.0.1", 0))
            self._udp = transport  # type: ignore[assignment]
            self.local = transport.get_extra_info("sockname")[:2]
        else:
            ctx = None
            if self.transport == "tls":
                import ssl

                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE  # the lab node's certificate is self-signed
            reader, writer = await asyncio.open_connection(*self.node, ssl=ctx)
            self._writer = writer
            self.local = writer.get_extra_info("sockname")[:2]
            self._reader_task = loop.create_task(self._read(reader))
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        framer = StreamFramer()
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for msg in framer.feed(data):
                if msg != b"\r\n\r\n":
                    self._on_data(msg)

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()

    def send_raw(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        if self._udp is not None:
            self._udp.sendto(data, to or self.node)
        else:
            assert self._writer is not None
            self._writer.write(data)

    def _on_data(self, data: bytes, source: tuple[str, int] | None = None) -> None:
        self.raw_log.append(data)
        msg = parse_message(data, stream=self.transport != "udp")
        if isinstance(msg, Response):
            fut = self._pending.get(msg.top_via().branch or "")
            if fut is not None and not fut.done() and msg.status >= 200:
                fut.set_result(msg)
            return
        self.received.append(msg)
        self.got_message.set()
        if msg.method == "MESSAGE" and self.answer is None:
            return
        status = self.answer if msg.method == "MESSAGE" and self.answer else 200
        extra = None
        if msg.method == "OPTIONS":  # a client answers a capability query with its tags
            extra = [("Contact", f"{self.contact};{RCS_TAGS}")]
        data = make_response(msg, status, to_tag="ue" + self.number[-4:],
                             extra=extra).to_bytes()
        # RFC 3581 §4 / §18.2.2: over UDP the response goes back where the request came from
        if msg.method == "MESSAGE" and self.answer_delay:
            asyncio.get_running_loop().call_later(self.answer_delay, self.send_raw, data,
                                                  source)
        else:
            self.send_raw(data, source)

    @property
    def contact(self) -> str:
        t = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"<sip:{self.number}@{self.local[0]}:{self.local[1]}{t}>"

    def _via(self, branch: str) -> str:
        proto = self.transport.upper()
        return f"SIP/2.0/{proto} {self.local[0]}:{self.local[1]};branch={branch};rport"

    def build(self, method: str, uri: str, to: str, *, headers: list[tuple[str, str]] | None = None,
              body: bytes = b"", call_id: str | None = None, cseq: int | None = None,
              branch: str | None = None) -> Request:
        branch = branch or "z9hG4bK" + uuid.uuid4().hex[:16]
        items = [
            ("Via", self._via(branch)),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{self.number}@{DOMAIN}>;tag=t{uuid.uuid4().hex[:8]}"),
            ("To", to),
            ("Call-ID", call_id or uuid.uuid4().hex),
            ("CSeq", f"{cseq or next(self._seq)} {method}"),
        ]
        items.extend(headers or [])
        return Request(method, uri, Headers(items), body)

    async def request(self, req: Request, timeout: float = 5.0) -> Response:
        branch = req.top_via().branch or ""
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[branch] = fut
        data = req.to_bytes()
        try:
            self.send_raw(data)
            if self._udp is None:
                return await asyncio.wait_for(fut, timeout)
            # Over UDP a UE retransmits (RFC 3261 §17.1.2.2, Timer E) until a final arrives.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            interval = 0.1
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"no final response to {req.method}")
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), min(interval, left))
                except TimeoutError:
                    self.send_raw(data)
                    interval = min(interval * 2, 0.8)
        finally:
            self._pending.pop(branch, None)

    async def register(self, expires: int = 3600, tags: str = RCS_TAGS,
                       extra: list[tuple[str, str]] | None = None) -> Response:
        contact = f"{self.contact};{tags}" if tags else self.contact
        req = self.build("REGISTER", f"sip:{DOMAIN}", f"<sip:{self.number}@{DOMAIN}>",
                         headers=[("Contact", contact), ("Expires", str(expires)),
                                  *(extra or [])])
        return await self.request(req)

    async def message(self, to: str, text: str = "hello", *, mid: str | None = None,
                      extra: list[tuple[str, str]] | None = None, timeout: float = 5.0,
                      domain: str = DOMAIN,
                      disposition: str = "positive-delivery, display") -> Response:
        uri = f"sip:{to}@{domain}"
        req = self.build("MESSAGE", uri, f"<{uri}>", headers=[
            ("Content-Type", "message/cpim"),
            ("Accept-Contact",
             '*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'),
            *(extra or []),
        ], body=cpim_body(self.number, to, text, mid, disposition))
        return await self.request(req, timeout)

    async def options(self, to: str) -> Response:
        uri = f"sip:{to}@{DOMAIN}"
        req = self.build("OPTIONS", uri, f"<{uri}>",
                         headers=[("Contact", f"{self.contact};{RCS_TAGS}")])
        return await self.request(req)

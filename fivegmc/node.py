"""Build and run network elements from a profile: the 5GMC SIP node, the MaaP and the SMSC
stub (those of ``[node] elements`` this process runs) and the admin HTTP server, under one
TaskGroup, shut down by cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from .center.admin_api import add_routes as add_admin_routes
from .center.cdrs import CdrRecorder
from .center.node import Listener, SipNode
from .center.sms_fallback import P2pSmsFallback
from .config import Profile
from .maap.server import MaapNode
from .maap.trace_sink import TraceSink
from .obs.admin import AdminServer
from .obs.cdr import CdrWriter
from .obs.logging import make_logger
from .obs.metrics import SipMetrics
from .smsc.admin_api import add_routes as add_smsc_routes
from .smsc.esme import Esme
from .smsc.metrics import SmscMetrics
from .smsc.server import SmscNode
from .store.factory import open_store
from .store.protocol import Store


@dataclass
class Node:
    profile: Profile
    log: Any = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = make_logger(self.profile.log.level, self.profile.log.format,
                                   self.profile.operator.name)
        self.cdrs: CdrRecorder | None = None
        if self.profile.cdr.enabled:
            writer = CdrWriter(Path(self.profile.cdr.dir).expanduser(),
                               max_bytes=self.profile.cdr.max_file_bytes)
            self.cdrs = CdrRecorder(writer, self.profile.operator.name,
                                    self.profile.operator.name)
        self.admin = AdminServer(self.registry, self._health)
        # The 5GMC (and its message store), unless [node] elements leaves it to another process.
        self.center: SipNode | None = None
        self._store: Store | None = None
        if self.profile.runs("center"):
            self.metrics = SipMetrics(self.registry)
            cfg = self.profile.store
            if cfg.kind == "sqlite":
                Path(cfg.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._store = open_store(cfg.kind, path=cfg.path, url=cfg.url,
                                     max_stored=cfg.max_stored)
            self.center = SipNode(self.profile, self.metrics, self.log, self._store, self.cdrs)
            add_admin_routes(self.admin.app, self.center, self._store)
        # The MaaP (issue 4): a separate element that reaches the 5GMC over SIP/TCP.
        self.maap: MaapNode | None = None
        self.trace_sink: TraceSink | None = None  # its trace events, when the 5GMC is apart
        if self.profile.runs("maap"):
            note_event = self.center.note_event if self.center is not None else None
            if note_event is None and self.profile.maap.trace_url:
                self.trace_sink = TraceSink(self.profile.maap.trace_url, log=self.log)
                note_event = self.trace_sink.note_event
            cdrs: Any = self.cdrs  # a CdrRecorder is a maap.fallback.CdrSink (structural)
            self.maap = MaapNode(self.profile, self.log, self.registry,
                                 note_event=note_event, cdrs=cdrs)
            self.maap.add_admin_routes(self.admin.app)
        # The SMSC stub (issue 5): SMPP v3.4 server, MO injection and inbox on the admin API.
        self.smsc: SmscNode | None = None
        if self.profile.runs("smsc"):
            self.smsc = SmscNode(self.profile.smsc, SmscMetrics(self.registry), self.log)
            add_smsc_routes(self.admin.app, self.smsc)
        self.endpoints: list[str] = []
        # P2P SMS fallback (issue 5): the 5GMC's ESME, bound once the SMSC address is known.
        self.esme: Esme | None = None
        self.sms_fallback: P2pSmsFallback | None = None

    @property
    def sip(self) -> SipNode:
        """The 5GMC of this process (an error in a process that does not run it)."""
        if self.center is None:
            raise RuntimeError("this process runs no 5GMC (node.elements has no \"center\")")
        return self.center

    @property
    def store(self) -> Store:
        """The 5GMC's message store (an error in a process that does not run the 5GMC)."""
        if self._store is None:
            raise RuntimeError("this process runs no 5GMC, so it has no message store")
        return self._store

    @property
    def elements(self) -> list[str]:
        """The elements this process runs, e.g. ``["center", "smsc"]``."""
        parts = (("center", self.center), ("maap", self.maap), ("smsc", self.smsc))
        return [name for name, element in parts if element is not None]

    @property
    def store_description(self) -> str:
        if self._store is None:
            return "none (no 5GMC in this process)"
        cfg = self.profile.store
        where = {"sqlite": cfg.path, "redis": cfg.url}.get(cfg.kind, "(lost on exit)")
        return f"{cfg.kind} {where}"

    def _health(self) -> dict[str, Any]:
        health: dict[str, Any] = {"operator": self.profile.operator.name}
        if self.center is not None:
            servers, clients = self.center.core.transaction_counts
            health |= {
                "listeners": [str(lst) for lst in self.center.listeners],
                "registrations": self.center.registrar.binding_count,
                "transactions": {"server": servers, "client": clients},
            }
        health["elements"] = self.elements
        return health

    @property
    def sip_listeners(self) -> list[Listener]:
        return self.center.listeners if self.center is not None else []

    def listener(self, transport: str) -> Listener:
        for lst in self.sip_listeners:
            if lst.transport == transport:
                return lst
        raise KeyError(transport)

    async def start(self) -> list[str]:
        if self.center is not None:
            await self.store.open()  # before any listener: stored messages must be reachable
            for lst in await self.center.start():
                self.endpoints.append(str(lst))
        if self.maap is not None:  # after the SIP node: it needs the 5GMC's TCP address
            self.endpoints.extend(await self.maap.start())
            assert self.maap.link.address is not None
            maap_host, maap_port = self.maap.link.address
            # The chatbot domains go to this process's MaaP; a 5GMC without it in the same
            # process needs explicit [[routes]] to the MaaP's SIP listener.
            for domain in self.maap.chatbot_domains if self.center is not None else ():
                self.sip.add_route(domain, f"sip:{maap_host}:{maap_port};transport=tcp")
        if self.smsc is not None:
            smpp_host, smpp_port = await self.smsc.start()
            self.endpoints.append(f"smpp/tcp {smpp_host}:{smpp_port}")
        self._start_p2p_sms_fallback()
        if self.profile.admin.enabled:
            host, port = await self.admin.start(self.profile.admin.host, self.profile.admin.port)
            self.endpoints.append(f"admin/http {host}:{port}")
        return self.endpoints

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            if self.center is not None:
                tg.create_task(self.center.run())
            if self.esme is not None and self.sms_fallback is not None:
                self.sms_fallback.bind(tg.create_task)
                tg.create_task(self.esme.run())
            if self.smsc is not None:
                tg.create_task(self.smsc.run())
            if self.maap is not None:
                tg.create_task(self.maap.run(self._maap_center(), self._maap_smsc()))
            if self.trace_sink is not None:
                tg.create_task(self.trace_sink.run())

    def _maap_center(self) -> tuple[str, int]:
        """The 5GMC the MaaP sends through: ``maap.center`` (``host:port`` or a SIP URI), or
        this node's own SIP TCP listener."""
        center = self.profile.maap.center
        if center:
            hostport = center.removeprefix("sip:").split(";", 1)[0]
            host, _, port = hostport.rpartition(":")
            return host.strip("[]"), int(port)
        lst = self.listener("tcp")
        return lst.host, lst.port

    def _maap_smsc(self) -> tuple[str, int] | None:
        """The SMSC the MaaP's SMS fallback binds to: ``maap.sms.host``/``port``, or this
        node's own SMSC stub (None: none configured)."""
        sms = self.profile.maap.sms
        if sms.host or sms.port:
            return sms.host or "127.0.0.1", sms.port
        return self.smsc.address if self.smsc is not None else None

    def _start_p2p_sms_fallback(self) -> None:
        """The 5GMC's own bind to the SMSC ([smsc.esme]; host "" = this node's stub) for P2P
        messages to SMS-only subscribers (``messaging.sms_fallback``)."""
        if self.center is None:
            return
        cfg = self.profile.smsc.esme
        host, port = cfg.host, cfg.port
        if not (host and port) and self.smsc is not None and self.smsc.address is not None:
            host, port = self.smsc.address
        if not self.profile.messaging.sms_fallback or not (host and port):
            return
        self.esme = Esme.from_config(cfg, host, port, log=self.log)
        self.sms_fallback = P2pSmsFallback(
            self.profile, self.sip.core, self.esme, self.sip.forwarding, self.log, self.sip.now,
            self.sip.note_event, self.sip.cdrs)
        self.sip.core.sms_handler = self.sms_fallback.on_sms
        self.sip.router.sms_fallback_ready = True

    async def close(self) -> None:
        if self.esme is not None:
            await self.esme.close()
        if self.smsc is not None:
            await self.smsc.close()
        if self.maap is not None:
            await self.maap.close()
        if self.center is not None:
            await self.center.close()
        await self.admin.close()
        if self._store is not None:
            await self._store.close()
        if self.cdrs is not None:
            self.cdrs.close()


@asynccontextmanager
async def running(profile: Profile, log: Any = None) -> AsyncIterator[Node]:
    """Start a node, run it in a child task, stop it on exit (for tests and embedding)."""
    node = Node(profile, log=log)
    await node.start()
    try:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(node.run())
            try:
                yield node
            finally:
                task.cancel()
    finally:
        await node.close()

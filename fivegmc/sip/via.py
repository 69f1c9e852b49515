"""The Via header (RFC 3261 §20.42, §18.2.1 received, RFC 3581 rport)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import RemoteProtocolError
from .uri import _parse_host_port, _split_header_params, find_param, format_params


@dataclass(slots=True)  # not frozen: construction is 4x cheaper (hot path)
class Via:
    transport: str  # upper-case: UDP, TCP, TLS, SCTP, WS, WSS
    host: str
    port: int | None
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        return find_param(self.params, name)

    @property
    def branch(self) -> str | None:
        for k, v in self.params:  # find_param, inlined: read for every request and response
            if k == "branch" or k.lower() == "branch":
                return v if v is not None else ""
        return None

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{format_params(self.params)}"


_FAST_PROTO = {"SIP/2.0/UDP": "UDP", "SIP/2.0/TCP": "TCP", "SIP/2.0/TLS": "TLS"}
_SIMPLE_HOST = frozenset("0123456789.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")


def parse_via(value: str) -> Via:
    """Parse one Via value (one element of a possibly comma-separated field)."""
    # Fast path for the common shape "SIP/2.0/UDP host:port;p=v;..." with no odd spacing.
    head, sp, rest = value.partition(" ")
    transport = _FAST_PROTO.get(head)
    if transport is not None and sp and '"' not in rest and " " not in rest:
        hostport, _, params = rest.partition(";")
        host, colon, port_text = hostport.partition(":")
        if host and _SIMPLE_HOST.issuperset(host) and (
            not colon or (port_text.isdigit() and port_text.isascii()
                          and 0 < int(port_text) < 65536)
        ):
            out: list[tuple[str, str | None]] = []
            if params:
                for part in params.split(";"):
                    name, eq, v = part.partition("=")
                    if not name:
                        raise RemoteProtocolError(f"empty Via parameter in {value!r}")
                    out.append((name, v if eq else None))
            return Via(transport, host, int(port_text) if colon else None, tuple(out))
    return _parse_via_slow(value)


def _parse_via_slow(value: str) -> Via:
    text = value.strip()
    proto, sep, rest = text.partition("/")
    if not sep:
        raise RemoteProtocolError(f"bad Via {value!r}")
    version, sep, rest = rest.partition("/")
    if not sep or proto.strip().upper() != "SIP" or version.strip() != "2.0":
        raise RemoteProtocolError(f"bad Via protocol in {value!r}")
    rest = rest.lstrip()
    i = 0
    while i < len(rest) and rest[i] not in " \t":
        i += 1
    transport = rest[:i].strip().upper()
    if not transport:
        raise RemoteProtocolError(f"Via without transport: {value!r}")
    rest = rest[i:].strip()
    hostport, semi, params = rest.partition(";")
    # sent-by = host [ COLON port ], where COLON may have white space around it (§25.1).
    host_text, colon, port_text = hostport.partition(":")
    if hostport.strip().startswith("["):
        compact = hostport.strip()
    else:
        compact = host_text.strip() + (":" + port_text.strip() if colon else "")
    if any(c in compact for c in " \t"):
        raise RemoteProtocolError(f"bad sent-by in Via {value!r}")
    host, port = _parse_host_port(compact, value)
    return Via(transport, host, port, _split_header_params(";" + params) if semi else ())

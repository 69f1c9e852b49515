"""A lean HTTP/1.1 client: a sans-IO core (:mod:`.h1`) and an asyncio adapter (:mod:`.client`)."""

from .client import ConnectError, ConnectionClosed, HttpClient, RequestTimeout
from .h1 import HttpError, ProtocolError, Response, ResponseParser, build_request

__all__ = [
    "ConnectError",
    "ConnectionClosed",
    "HttpClient",
    "HttpError",
    "ProtocolError",
    "RequestTimeout",
    "Response",
    "ResponseParser",
    "build_request",
]

"""Prometheus metrics of the SIP node, on a registry passed in (never the global one).

Label children are bound once and cached: ``labels()`` costs several times an ``inc()``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class _Children:
    """Cache of bound label children of one counter."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: Counter) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Counter] = {}

    def get(self, *labels: str) -> Counter:
        child = self._cache.get(labels)
        if child is None:
            child = self._metric.labels(*labels)
            self._cache[labels] = child
        return child


class SipMetrics:
    """The ``fivegmc_sip_*`` metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._requests = Counter(
            "fivegmc_sip_requests", "SIP requests received, by method and final outcome status",
            ("method", "status"), registry=registry,
        )
        self._responses_relayed = Counter(
            "fivegmc_sip_responses_relayed", "Responses relayed upstream, by status class",
            ("status_class",), registry=registry,
        )
        self._transactions = Counter(
            "fivegmc_sip_transactions", "Transactions ended, by kind and outcome",
            ("kind", "outcome"), registry=registry,
        )
        self._parse_errors = Counter(
            "fivegmc_sip_parse_errors", "Messages rejected as malformed or oversize",
            ("transport", "kind"), registry=registry,
        )
        self._dropped = Counter(
            "fivegmc_sip_dropped", "Messages dropped without an answer, by reason",
            ("reason",), registry=registry,
        )
        self._retransmissions = Counter(
            "fivegmc_sip_retransmissions", "Retransmissions, received (absorbed) and sent",
            ("direction",), registry=registry,
        )
        self.relay_seconds = Histogram(
            "fivegmc_sip_relay_seconds",
            "Time from a relayed request's arrival to its final response being sent upstream",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5, 32),
            registry=registry,
        )
        self.active_transactions = Gauge(
            "fivegmc_sip_active_transactions", "Transactions in progress", ("kind",),
            registry=registry,
        )
        self.tcp_connections = Gauge(
            "fivegmc_sip_tcp_connections", "Open SIP stream connections (TCP and TLS)",
            registry=registry,
        )
        self.registrations = Gauge(
            "fivegmc_sip_registrations", "Registered contact bindings", registry=registry
        )
        self.registered_aors = Gauge(
            "fivegmc_sip_registered_aors", "Addresses of record with at least one binding",
            registry=registry,
        )
        self.requests = _Children(self._requests)
        self.responses_relayed = _Children(self._responses_relayed)
        self.transactions = _Children(self._transactions)
        self.parse_errors = _Children(self._parse_errors)
        self.dropped = _Children(self._dropped)
        self.retransmissions = _Children(self._retransmissions)

    def watch_registrar(self, bindings: Callable[[], int], aors: Callable[[], int]) -> None:
        self.registrations.set_function(lambda: float(bindings()))
        self.registered_aors.set_function(lambda: float(aors()))

    def watch_transactions(self, server: Callable[[], int], client: Callable[[], int]) -> None:
        self.active_transactions.labels("server").set_function(lambda: float(server()))
        self.active_transactions.labels("client").set_function(lambda: float(client()))

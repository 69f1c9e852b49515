"""Prometheus metrics of the SIP node, on a registry passed in (never the global one).

The hot path only bumps plain integers (a dict entry per label set); a custom collector turns
them into Prometheus families when ``/metrics`` is scraped. A prometheus_client ``inc()`` takes
a lock and costs several times more, and a relayed MESSAGE touches five counters.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class LabelledCount:
    """One counter family: label values -> count."""

    __slots__ = ("doc", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.doc = doc
        self.labels = labels
        self.values: dict[tuple[str, ...], int] = {}

    def inc(self, *labels: str) -> None:
        values = self.values
        values[labels] = values.get(labels, 0) + 1

    def get(self, *labels: str) -> int:
        return self.values.get(labels, 0)

    def family(self) -> CounterMetricFamily:
        fam = CounterMetricFamily(self.name, self.doc, labels=list(self.labels))
        for labels, value in sorted(self.values.items()):
            fam.add_metric(list(labels), value)
        return fam


class Timing:
    """A histogram of seconds with fixed buckets, observed with one bisect."""

    __slots__ = ("bounds", "counts", "doc", "name", "total")

    def __init__(self, name: str, doc: str, bounds: tuple[float, ...]) -> None:
        self.name = name
        self.doc = doc
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def family(self) -> HistogramMetricFamily:
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return HistogramMetricFamily(self.name, self.doc, buckets=buckets, sum_value=self.total)


class SipMetrics(Collector):
    """The ``fivegmc_sip_*`` metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = LabelledCount(
            "fivegmc_sip_requests", "SIP requests received, by method and final outcome status",
            ("method", "status"))
        self.responses_relayed = LabelledCount(
            "fivegmc_sip_responses_relayed", "Responses relayed upstream, by status class",
            ("status_class",))
        self.transactions = LabelledCount(
            "fivegmc_sip_transactions", "Transactions ended, by kind and outcome",
            ("kind", "outcome"))
        self.parse_errors = LabelledCount(
            "fivegmc_sip_parse_errors", "Messages rejected as malformed or oversize",
            ("transport", "kind"))
        self.dropped = LabelledCount(
            "fivegmc_sip_dropped", "Messages dropped without an answer, by reason", ("reason",))
        self.retransmissions = LabelledCount(
            "fivegmc_sip_retransmissions", "Request retransmissions received (absorbed)",
            ("direction",))
        self.relay_seconds = Timing(
            "fivegmc_sip_relay_seconds",
            "Time from a relayed request's arrival to its final response being sent upstream",
            (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0, 32.0))
        self._counters = (self.requests, self.responses_relayed, self.transactions,
                          self.parse_errors, self.dropped, self.retransmissions)
        self.active_transactions = Gauge(
            "fivegmc_sip_active_transactions", "Transactions in progress", ("kind",),
            registry=registry)
        self.tcp_connections = Gauge(
            "fivegmc_sip_tcp_connections", "Open SIP stream connections (TCP and TLS)",
            registry=registry)
        self.registrations = Gauge(
            "fivegmc_sip_registrations", "Registered contact bindings", registry=registry)
        self.registered_aors = Gauge(
            "fivegmc_sip_registered_aors", "Addresses of record with at least one binding",
            registry=registry)
        self.udp_backlog_bytes = Gauge(
            "fivegmc_sip_udp_backlog_bytes",
            "Unread datagram bytes in the SIP UDP socket (kernel accounting), last sample",
            registry=registry)
        self.udp_kernel_drops = Gauge(
            "fivegmc_sip_udp_kernel_drops",
            "Datagrams the kernel dropped on the SIP UDP socket since it was opened",
            registry=registry)
        self.overloaded = Gauge(
            "fivegmc_sip_overloaded", "1 while new requests are being shed with 503",
            registry=registry)
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        for counter in self._counters:
            yield counter.family()
        yield self.relay_seconds.family()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families are built at scrape time; nothing to check at registration

    def watch_registrar(self, bindings: Callable[[], int], aors: Callable[[], int]) -> None:
        self.registrations.set_function(lambda: float(bindings()))
        self.registered_aors.set_function(lambda: float(aors()))

    def watch_transactions(self, server: Callable[[], int], client: Callable[[], int]) -> None:
        self.active_transactions.labels("server").set_function(lambda: float(server()))
        self.active_transactions.labels("client").set_function(lambda: float(client()))

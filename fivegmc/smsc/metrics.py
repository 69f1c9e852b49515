"""Prometheus metrics of the SMSC stub (``fivegmc_smsc_*``) on a registry passed in.

Plain integer counters bumped on the hot path, turned into families at scrape time (as
``fivegmc/obs/metrics.py`` does for SIP).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ..obs.metrics import LabelledCount


class SmscMetrics(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pdus_in = LabelledCount("fivegmc_smsc_pdus_received",
                                     "SMPP PDUs received, by command", ("command",))
        self.binds = LabelledCount("fivegmc_smsc_binds", "Bind attempts, by type and status",
                                   ("type", "status"))
        self.submits = LabelledCount("fivegmc_smsc_submits",
                                     "submit_sm answered, by command_status", ("status",))
        self.receipts = LabelledCount("fivegmc_smsc_receipts",
                                      "Delivery receipts queued, by stat", ("stat",))
        self.delivers = LabelledCount("fivegmc_smsc_delivers",
                                      "deliver_sm sent, by kind (receipt / mo)", ("kind",))
        self.mo = LabelledCount("fivegmc_smsc_mo_messages", "MO messages injected", ())
        self.rejected = LabelledCount("fivegmc_smsc_rejected",
                                      "PDUs answered with an error by the session, by status",
                                      ("status",))
        self.closed = LabelledCount("fivegmc_smsc_connections_closed",
                                    "Connections closed, by reason", ("reason",))
        self._counters = (self.pdus_in, self.binds, self.submits, self.receipts, self.delivers,
                          self.mo, self.rejected, self.closed)
        self.active_binds = Gauge("fivegmc_smsc_active_binds", "Bound SMPP sessions",
                                  registry=registry)
        self.queued = Gauge("fivegmc_smsc_queued_delivers",
                            "deliver_sm waiting for a receiver bind", registry=registry)
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        for counter in self._counters:
            yield counter.family()

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def watch(self, binds: Callable[[], int], queued: Callable[[], int]) -> None:
        self.active_binds.set_function(lambda: float(binds()))
        self.queued.set_function(lambda: float(queued()))

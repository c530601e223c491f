"""Optional Prometheus endpoint (``metrics_listen = "127.0.0.1:9477"``): the same
counters and gauges as ``snoopd stats``, exported with prometheus-client."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)


def metric_name(counter: str) -> str:
    return "snoopd_" + re.sub(r"[^a-zA-Z0-9_]", "_", counter)


class StatsCollector:
    """A prometheus-client collector that reads the daemon's stats when scraped."""

    def __init__(self, stats: Callable[[], dict[str, Any]], bridge: str) -> None:
        self._stats = stats
        self._bridge = bridge

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self._stats()
        for name, value in stats["counters"].items():
            family = CounterMetricFamily(metric_name(name), f"snoopd counter {name}", labels=["bridge"])
            family.add_metric([self._bridge], value)
            yield family
        for name, value in stats["gauges"].items():
            gauge = GaugeMetricFamily(metric_name(name), f"snoopd {name} now", labels=["bridge"])
            gauge.add_metric([self._bridge], value)
            yield gauge


def start_metrics(address: tuple[str, int], stats: Callable[[], dict[str, Any]], bridge: str) -> Any:
    """Serve /metrics on ``address`` from a thread; returns the server (``shutdown()``)."""
    from prometheus_client import start_http_server
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, bridge))
    server, _thread = start_http_server(address[1], addr=address[0], registry=registry)
    log.info("metrics.listening address=%s:%d", *address)
    return server

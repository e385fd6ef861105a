"""Prometheus series of the endpoint, next to BentoML's own on /metrics (one set per worker).

Every series carries an `endpoint` label: the default endpoint's is `default`, a named
endpoint's is its name (`ml.serving.endpoints`).
"""

from __future__ import annotations

import bentoml

DEFAULT = "default"


class Metrics:
    def __init__(self):
        self.predictions = bentoml.metrics.Counter(
            name="conveyor_predictions_total", documentation="rows scored",
            labelnames=["served_by", "model_version", "endpoint"])
        self.errors = bentoml.metrics.Counter(
            name="conveyor_model_errors_total", documentation="rows whose model raised (fell back to champion)",
            labelnames=["served_by", "endpoint"])
        self.latency = bentoml.metrics.Histogram(
            name="conveyor_batch_latency_seconds", documentation="model scoring time per batch",
            labelnames=["served_by", "endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        # the predict routes answer in front of BentoML's middleware (service.py), so its request
        # series do not see them: these do, at the cost of one dict lookup per request
        self.requests = bentoml.metrics.Counter(
            name="conveyor_requests_total", documentation="predict requests answered, by HTTP status",
            labelnames=["endpoint", "target", "status"])
        self.request_latency = bentoml.metrics.Histogram(
            name="conveyor_request_duration_seconds",
            documentation="a predict request's time in the worker, from its body to its answer",
            labelnames=["endpoint", "target"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.revision_gauge = bentoml.metrics.Gauge(
            name="conveyor_endpoint_revision", documentation="endpoint config revision being served",
            labelnames=["endpoint"])

    def of(self, endpoint: str | None) -> EndpointMetrics:
        """The series of one endpoint (None: the default one), as an engine records them."""
        return EndpointMetrics(self, endpoint or DEFAULT)


class EndpointMetrics:
    def __init__(self, metrics: Metrics, endpoint: str):
        self.m, self.endpoint = metrics, endpoint
        self._children: dict = {}  # labelled series, looked up once (`labels()` costs more than the count)

    def request(self, target: str, status: int, seconds: float) -> None:
        """One predict request answered: counted by status, timed by target."""
        key = (target, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (
                self.m.requests.labels(endpoint=self.endpoint, target=target, status=str(status)),
                self.m.request_latency.labels(endpoint=self.endpoint, target=target))
        pair[0].inc()
        pair[1].observe(seconds)

    def observe(self, roles, versions, seconds):
        counts: dict = {}
        for role, version in zip(roles, versions):
            counts[(role, version)] = counts.get((role, version), 0) + 1
        for (role, version), n in counts.items():
            self.m.predictions.labels(served_by=role, model_version=version, endpoint=self.endpoint).inc(n)
        for role in {r for r, _ in counts}:
            self.m.latency.labels(served_by=role, endpoint=self.endpoint).observe(seconds)

    def error(self, role, n):
        self.m.errors.labels(served_by=role, endpoint=self.endpoint).inc(n)

    def revision(self, rev):
        self.m.revision_gauge.labels(endpoint=self.endpoint).set(rev)

"""The chart's job workers: their Deployment (drain on SIGTERM, probes, metrics port), the PDB,
the HPA fallback, KEDA's redis-streams triggers on each queue, and the refusals."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest

from floodgate.jobs.keys import GROUP, queue_keys
from tests.support import chart
from tests.support.chart import CHART, Manifest, find, one, render


@pytest.fixture(autouse=True)
def _helm_available() -> None:
    reason = chart.helm_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the chart tests, but {reason}", pytrace=False)
    pytest.skip(reason)


@cache
def rendered(values: str | None = None) -> tuple[Manifest, ...]:
    files = [CHART / "ci" / f"{values}-values.yaml"] if values else []
    return tuple(render(values_files=files, api_versions=chart.ADDON_APIS))


def worker_pod(manifests: tuple[Manifest, ...]) -> chart.PodTemplate:
    (template,) = [
        t for t in chart.pod_templates(manifests) if t.owner == "Deployment/floodgate-worker"
    ]
    return template


def test_default_worker_deployment() -> None:
    manifests = rendered()
    deployment = one(manifests, "Deployment", "floodgate-worker")
    assert deployment["spec"]["replicas"] == 1
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert labels["app.kubernetes.io/component"] == "worker"
    pod = worker_pod(manifests)
    assert pod.spec["automountServiceAccountToken"] is False
    worker = pod.container("worker")
    assert worker["args"] == ["worker", "--queues", "default"]
    assert worker["image"] == "floodgate:0.1.0"
    env = chart.env_of(worker)
    assert env["FLOODGATE_JOBS_CONCURRENCY"]["value"] == "10"
    assert env["FLOODGATE_WORKER_METRICS_PORT"]["value"] == "9100"
    assert env["FLOODGATE_WORKER_METRICS_HOST"]["value"] == "0.0.0.0"
    # The same shared Redis and database as the API.
    api_env = chart.env_of(one(manifests, "Deployment", "floodgate")["spec"]["template"]["spec"]
                           ["containers"][0])  # fmt: skip
    assert env["FLOODGATE_LIMITS_URL"] == api_env["FLOODGATE_LIMITS_URL"]
    assert env["FLOODGATE_DATABASE_URL"] == api_env["FLOODGATE_DATABASE_URL"]
    # Graceful: the pod outlives the drain the worker is given.
    grace = int(env["FLOODGATE_GRACEFUL_TIMEOUT_S"]["value"])
    assert pod.spec["terminationGracePeriodSeconds"] >= grace + 10
    assert worker["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert "readinessProbe" not in worker  # it serves no traffic
    service = one(manifests, "Service", "floodgate-worker")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == labels
    # One replica is not guaranteed two: no PDB that would block every drain of the node.
    assert not find(manifests, "PodDisruptionBudget", "floodgate-worker")


def test_the_in_chart_redis_never_evicts_queued_jobs() -> None:
    redis = one(rendered(), "Deployment", "floodgate-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"


def test_worker_hpa_on_cpu_and_its_pdb() -> None:
    manifests = rendered("hpa")
    assert "replicas" not in one(manifests, "Deployment", "floodgate-worker")["spec"]
    hpa = one(manifests, "HorizontalPodAutoscaler", "floodgate-worker")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "floodgate-worker"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    pdb = one(manifests, "PodDisruptionBudget", "floodgate-worker")
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    # The workers get their own NetworkPolicy and may reach the in-chart Redis.
    policy = one(manifests, "NetworkPolicy", "floodgate-worker")
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    redis_policy = one(manifests, "NetworkPolicy", "floodgate-redis")
    components = [
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in redis_policy["spec"]["ingress"][0]["from"]
    ]
    assert "worker" in components
    monitor = one(manifests, "ServiceMonitor", "floodgate-worker")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_keda_scales_workers_on_each_queue_s_lag_and_pending() -> None:
    manifests = rendered("worker-keda")
    deployment = one(manifests, "Deployment", "floodgate-worker")
    assert "replicas" not in deployment["spec"]
    args = worker_pod(manifests).container("worker")["args"]
    assert args == ["worker", "--queues", "default", "--queues", "bulk"]
    assert not find(manifests, "HorizontalPodAutoscaler", "floodgate-worker")
    scaled = one(manifests, "ScaledObject", "floodgate-worker")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "floodgate-worker",
        "envSourceContainerName": "worker",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 12)
    triggers = spec["triggers"]
    assert len(triggers) == 4  # lag and pending, per queue
    # The stream and group the worker really uses (the key layout is the queue's own).
    streams = {queue_keys(q).stream for q in ("default", "bulk")}
    assert {t["metadata"]["stream"] for t in triggers} == streams
    for trigger in triggers:
        meta = trigger["metadata"]
        assert trigger["type"] == "redis-streams"
        assert meta["consumerGroup"] == GROUP
        assert meta["address"] == "floodgate-redis.floodgate.svc:6379"
        # The password the worker container already has from the in-chart Redis's Secret.
        assert meta["passwordFromEnv"] == "FLOODGATE_SHARED_REDIS_PASSWORD"
    lag = [t["metadata"] for t in triggers if "lagCount" in t["metadata"]]
    pending = [t["metadata"] for t in triggers if "pendingEntriesCount" in t["metadata"]]
    assert [m["lagCount"] for m in lag] == ["100", "100"]
    assert [m["pendingEntriesCount"] for m in pending] == ["20", "20"]
    env = chart.env_of(worker_pod(manifests).container("worker"))
    assert "FLOODGATE_SHARED_REDIS_PASSWORD" in env


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"sharedRedis.enabled": "false", "operator.enabled": "false"},
            "worker.enabled needs sharedRedis.enabled",
        ),
        (
            {"worker.autoscaling.enabled": "true", "worker.keda.enabled": "true"},
            "worker.autoscaling.enabled and worker.keda.enabled are mutually exclusive",
        ),
        (
            {"worker.keda.enabled": "true", "sharedRedis.existingSecret": "ext"},
            "needs worker.keda.address",
        ),
    ],
)
def test_contradictory_worker_values_are_refused(values: dict[str, str], message: str) -> None:
    error = chart.render_failure(
        set_values=values, api_versions=chart.ADDON_APIS, extra=["--skip-schema-validation"]
    )
    assert message in error, error


def test_the_schema_refuses_workers_without_a_shared_redis() -> None:
    error = chart.render_failure(
        set_values={"sharedRedis.enabled": "false", "operator.enabled": "false"}
    )
    assert "/worker/enabled" in error, error


def test_worker_keda_needs_the_keda_api() -> None:
    error = chart.render_failure(values_files=[Path(CHART / "ci" / "worker-keda-values.yaml")])
    assert "keda.sh/v1alpha1" in error, error

"""The Helm chart rendered by the real helm (no cluster): lint, Kubernetes schemas, the objects.

Each `helm/floodgate/ci/*-values.yaml` is rendered as if the cluster served the add-on APIs
(ServiceMonitor, KEDA) and every built-in object is validated against the Kubernetes 1.29 (the
chart's minimum) and 1.36 OpenAPI schemas in strict mode (kubernetes-validate: unknown fields are
errors). CRD-backed add-on objects have no schema there and are checked by the assertions below;
the apiserver-side checks (admission, restricted Pod Security, RBAC in action) are in
tests/k8s/test_chart.py. skaffold.yaml is checked by skaffold itself and by its JSON schema.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from scripts import generate

from tests.support import chart
from tests.support.chart import CHART, CI_VALUES, REPO_ROOT, Manifest, find, one, render

# The chart's kubeVersion floor, and the version of the test apiserver.
KUBERNETES_VERSIONS = ("1.29.0", "1.36.0")
ADDON_KINDS = {"ServiceMonitor": "monitoring.coreos.com/v1", "ScaledObject": "keda.sh/v1alpha1"}
SKAFFOLD = REPO_ROOT / ".tools" / "bin" / "skaffold"
HELM3_DIR = REPO_ROOT / ".tools" / "helm3"
SKAFFOLD_SCHEMAS = REPO_ROOT / ".tools" / "share" / "skaffold"
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def _require(reason: str | None) -> None:
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the chart tests, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _helm_available() -> None:
    _require(chart.helm_missing())


@cache
def rendered(values_file: Path | None = None, *, addons: bool = True) -> tuple[Manifest, ...]:
    """The chart rendered with one ci values file (None = defaults), cached across tests."""
    files = [values_file] if values_file else []
    return tuple(render(values_files=files, api_versions=chart.ADDON_APIS if addons else ()))


def ci(name: str) -> Path:
    path = CHART / "ci" / f"{name}-values.yaml"
    assert path.is_file(), path
    return path


def ids(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


def api_pod(manifests: tuple[Manifest, ...]) -> chart.PodTemplate:
    (template,) = [t for t in chart.pod_templates(manifests) if t.owner == "Deployment/floodgate"]
    return template


# ----------------------------------------------------------------------------- lint and schemas


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ids)
def test_lint_strict(values_file: Path) -> None:
    done = chart.run_helm("lint", "--strict", str(CHART), "--values", str(values_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout, done.stdout
    assert "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ids)
def test_every_object_matches_the_kubernetes_schemas(values_file: Path) -> None:
    manifests = rendered(values_file)
    assert manifests
    problems: list[str] = []
    for m in manifests:
        name = f"{m['kind']}/{m['metadata']['name']}"
        if m["kind"] in ADDON_KINDS:
            # No OpenAPI schema for CRD-backed kinds offline: checked by the assertions below.
            assert m["apiVersion"] == ADDON_KINDS[m["kind"]], name
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(m, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.absolute_path)
                problems.append(f"{name} @ {version}: {path}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_the_schema_validation_is_not_vacuous() -> None:
    deployment = json.loads(json.dumps(one(rendered(), "Deployment", "floodgate")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.36.0", strict=True)


def test_kubernetes_older_than_1_29_is_refused() -> None:
    error = chart.render_failure(extra=["--kube-version", "1.28.9"])
    assert "kubeVersion" in error or ">=1.29" in error, error


def test_values_schema_is_draft_07_and_accepts_the_defaults() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert not list(validator.iter_errors(defaults))
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("setting", "mentions"),
    [
        ("api.replica=3", "replica"),
        ("cacheSidecar.nativ=false", "nativ"),
        ("autoscaling.minReplica=2", "minReplica"),
        ("operator.namespace=shop", "namespace"),
        ("environment=prod", "environment"),
        ("image.digest=latest", "digest"),
        ("cacheSidecar.maxmemory=lots", "maxmemory"),
        ("keda.minReplicaCount=0", "minReplicaCount"),
        ("typo=1", "typo"),
    ],
)
def test_the_values_schema_rejects_typos_and_bad_values(setting: str, mentions: str) -> None:
    key, _, value = setting.partition("=")
    error = chart.render_failure(set_values={key: value})
    assert "schema" in error, error
    assert mentions in error, error


# ----------------------------------------------------------------------------- the API pods


@pytest.mark.parametrize("values_file", CI_VALUES, ids=ids)
def test_every_pod_meets_the_restricted_pod_security_standard(values_file: Path) -> None:
    """The restricted profile's rules, field by field (the apiserver enforces them in tests/k8s)."""
    for pod in chart.pod_templates(rendered(values_file)):
        spec = pod.spec
        pod_ctx = spec.get("securityContext") or {}
        assert not spec.get("hostNetwork"), pod.owner
        assert not spec.get("hostPID"), pod.owner
        for volume in spec.get("volumes") or []:
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUME_TYPES, (pod.owner, volume)
        for c in pod.containers():
            where = f"{pod.owner} {c['name']}"
            ctx = c.get("securityContext") or {}
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not ctx.get("capabilities", {}).get("add"), where
            assert not ctx.get("privileged"), where
            assert (ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))) is True, where
            assert ctx.get("runAsUser", pod_ctx.get("runAsUser")) not in (0, None), where
            seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile")) or {}
            assert seccomp.get("type") == "RuntimeDefault", where
            assert ":" in c["image"], where
            assert not c["image"].endswith(":latest"), where


def test_default_api_deployment() -> None:
    manifests = rendered()
    deployment = one(manifests, "Deployment", "floodgate")
    assert deployment["spec"]["replicas"] == 2
    pod = api_pod(manifests)
    assert pod.spec["automountServiceAccountToken"] is False
    assert pod.spec["serviceAccountName"] == "floodgate"
    api = pod.container("api")
    assert api["args"] == ["serve"]
    assert api["image"] == "floodgate:0.1.0"  # appVersion
    env = chart.env_of(api)
    assert env["FLOODGATE_WORKERS"]["value"] == "2"
    assert env["FLOODGATE_ENVIRONMENT"]["value"] == "production"
    assert env["FLOODGATE_CACHE_URL"]["value"] == "redis://127.0.0.1:6379/0"
    assert env["FLOODGATE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "floodgate-database",
        "key": "url",
    }
    assert env["FLOODGATE_CURSOR_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "floodgate-cursor"
    limits = env["FLOODGATE_LIMITS_URL"]["value"]
    assert (
        limits == "redis://:$(FLOODGATE_SHARED_REDIS_PASSWORD)@floodgate-redis.floodgate.svc:6379/0"
    )
    for variable, field in (
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("NODE_NAME", "spec.nodeName"),
    ):
        assert env[variable]["valueFrom"]["fieldRef"]["fieldPath"] == field
    assert api["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Writable places under the read-only root: /tmp and the metrics multiprocess dir (emptyDirs).
    mounts = {m["mountPath"]: m["name"] for m in api["volumeMounts"]}
    volumes = {v["name"]: v for v in pod.spec["volumes"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"]["value"] in mounts
    for path in ("/tmp", env["PROMETHEUS_MULTIPROC_DIR"]["value"]):
        assert "emptyDir" in volumes[mounts[path]], path
    grace = pod.spec["terminationGracePeriodSeconds"]
    assert grace > int(env["FLOODGATE_GRACEFUL_TIMEOUT_S"]["value"])
    assert not find(manifests, "HorizontalPodAutoscaler")
    assert one(manifests, "PodDisruptionBudget", "floodgate")["spec"]["maxUnavailable"] == 1


def test_default_cache_sidecar_is_a_native_sidecar() -> None:
    pod = api_pod(rendered())
    (cache_container,) = pod.spec["initContainers"]
    assert cache_container["name"] == "cache"
    assert cache_container["restartPolicy"] == "Always"
    assert "startupProbe" in cache_container
    assert "readinessProbe" in cache_container
    assert cache_container["image"] == "redis:7.4.2-alpine"
    args = cache_container["command"] + cache_container["args"]
    assert args[0] == "redis-server"
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    assert pairs["--bind"] == "127.0.0.1"
    assert pairs["--save"] == ""
    assert pairs["--appendonly"] == "no"
    assert pairs["--maxmemory"] == "128mb"
    assert pairs["--maxmemory-policy"] == "allkeys-lru"
    assert cache_container["securityContext"]["runAsUser"] == 999
    (data,) = cache_container["volumeMounts"]
    assert data["mountPath"] == "/data"
    assert "emptyDir" in {v["name"]: v for v in pod.spec["volumes"]}[data["name"]]
    assert [c["name"] for c in pod.spec["containers"]] == ["api"]


def test_sidecar_fallback_is_a_plain_container_and_images_pin_digests() -> None:
    manifests = rendered(ci("sidecar-fallback"))
    pod = api_pod(manifests)
    assert "initContainers" not in pod.spec
    assert [c["name"] for c in pod.spec["containers"]] == ["api", "cache"]
    cache_container = pod.container("cache")
    assert "restartPolicy" not in cache_container
    assert "startupProbe" not in cache_container
    assert cache_container["image"] == "redis:7.4.2-alpine@sha256:" + "0" * 64
    assert pod.container("api")["image"] == "floodgate:0.1.0@sha256:" + "1" * 64
    assert not find(manifests, "PodDisruptionBudget")  # one replica: a PDB would block drains


def test_no_sidecar_means_in_process_cache_only() -> None:
    pod = api_pod(rendered(ci("operator-off")))
    env = chart.env_of(pod.container("api"))
    assert env["FLOODGATE_CACHE_URL"]["value"] == "memory://"
    assert [c["name"] for c in pod.containers()] == ["api"]


# ----------------------------------------------------------------------------- autoscaling


def test_hpa_scales_on_the_app_container_cpu_and_requests_per_second() -> None:
    manifests = rendered(ci("hpa"))
    assert "replicas" not in one(manifests, "Deployment", "floodgate")["spec"]
    hpa = one(manifests, "HorizontalPodAutoscaler", "floodgate")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "floodgate",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 30)
    cpu, rps = hpa["spec"]["metrics"]
    assert cpu["type"] == "ContainerResource"
    assert cpu["containerResource"]["container"] == "api"
    assert cpu["containerResource"]["target"] == {"type": "Utilization", "averageUtilization": 65}
    assert rps["type"] == "Pods"
    assert rps["pods"]["metric"]["name"] == "floodgate_http_requests_per_second"
    assert rps["pods"]["target"] == {"type": "AverageValue", "averageValue": "500"}
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert one(manifests, "PodDisruptionBudget", "floodgate")
    assert not find(manifests, "ScaledObject")


def test_keda_scaled_object_replaces_the_hpa() -> None:
    manifests = rendered(ci("keda"))
    assert "replicas" not in one(manifests, "Deployment", "floodgate")["spec"]
    assert not find(manifests, "HorizontalPodAutoscaler")
    scaled = one(manifests, "ScaledObject")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "floodgate"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 40)
    cpu, prometheus = spec["triggers"]
    assert cpu == {
        "type": "cpu",
        "metricType": "Utilization",
        "metadata": {"value": "70", "containerName": "api"},
    }
    assert prometheus["type"] == "prometheus"
    assert prometheus["metadata"]["threshold"] == "500"
    assert 'service="floodgate"' in prometheus["metadata"]["query"]
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert one(manifests, "PodDisruptionBudget", "floodgate")


def test_hpa_and_keda_together_are_refused_by_the_schema_and_the_templates() -> None:
    both = {"autoscaling.enabled": "true", "keda.enabled": "true"}
    error = chart.render_failure(set_values=both, api_versions=chart.ADDON_APIS)
    assert "schema" in error, error
    assert "/keda/enabled" in error, error
    error = chart.render_failure(
        set_values=both, api_versions=chart.ADDON_APIS, extra=["--skip-schema-validation"]
    )
    assert "autoscaling.enabled and keda.enabled are mutually exclusive" in error, error


def test_keda_needs_the_keda_api() -> None:
    error = chart.render_failure(values_files=[ci("keda")])
    assert "keda.sh/v1alpha1" in error, error


# ----------------------------------------------------------------------------- operator


OPERATOR_RULES = [
    {
        "apiGroups": ["floodgate.dev"],
        "resources": ["ratelimitpolicies"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["floodgate.dev"],
        "resources": ["ratelimitpolicies/status"],
        "verbs": ["get", "patch", "update"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]


def test_operator_deployment_and_cluster_wide_rbac() -> None:
    manifests = rendered()
    deployment = one(manifests, "Deployment", "floodgate-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "floodgate-operator"
    assert pod["automountServiceAccountToken"] is True
    (operator,) = pod["containers"]
    assert operator["args"] == ["operator", "--liveness-port", "8080"]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert operator["ports"] == [{"name": "liveness", "containerPort": 8080, "protocol": "TCP"}]
    env = chart.env_of(operator)
    assert "FLOODGATE_LIMITS_URL" in env
    assert "FLOODGATE_OPERATOR_NAMESPACES" not in env
    role = one(manifests, "ClusterRole")
    assert role["rules"] == OPERATOR_RULES
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "floodgate-operator", "namespace": "floodgate"}
    ]
    assert not find(manifests, "Role")


def test_namespaced_operator_gets_a_role_per_namespace() -> None:
    manifests = rendered(ci("namespaced-operator"))
    assert not find(manifests, "ClusterRole")
    assert not find(manifests, "ClusterRoleBinding")
    roles = find(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["billing", "shop"]
    assert all(r["rules"] == OPERATOR_RULES for r in roles)
    bindings = find(manifests, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["billing", "shop"]
    operator = one(manifests, "Deployment", "floodgate-operator")
    env = chart.env_of(operator["spec"]["template"]["spec"]["containers"][0])
    assert env["FLOODGATE_OPERATOR_NAMESPACES"]["value"] == "shop,billing"


def test_operator_off_with_external_secrets() -> None:
    manifests = rendered(ci("operator-off"))
    names = {f"{m['kind']}/{m['metadata']['name']}" for m in manifests}
    assert not {n for n in names if "operator" in n or n.startswith("Cluster")}, names
    assert not find(manifests, "Secret"), "every secret comes from an existing Secret"
    assert not find(manifests, "Job")
    assert not find(manifests, "ConfigMap")
    env = chart.env_of(api_pod(manifests).container("api"))
    assert env["FLOODGATE_LIMITS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "floodgate-limits",
        "key": "url",
    }
    assert env["FLOODGATE_CURSOR_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "floodgate-cursor",
        "key": "secret",
    }
    assert env["FLOODGATE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "app-db",
        "key": "dsn",
    }


def test_without_a_shared_redis_limits_are_per_process_and_the_operator_is_refused() -> None:
    manifests = rendered(ci("no-shared-redis"))
    env = chart.env_of(api_pod(manifests).container("api"))
    assert env["FLOODGATE_LIMITS_URL"] == {"name": "FLOODGATE_LIMITS_URL", "value": "memory://"}
    assert not find(manifests, "Deployment", "floodgate-redis")
    error = chart.render_failure(set_values={"sharedRedis.enabled": "false"})
    assert "/operator/enabled" in error, error
    error = chart.render_failure(
        set_values={"sharedRedis.enabled": "false"}, extra=["--skip-schema-validation"]
    )
    assert "operator.enabled needs sharedRedis.enabled" in error, error


def test_in_chart_shared_redis_is_single_replica_with_a_password() -> None:
    manifests = rendered()
    redis = one(manifests, "Deployment", "floodgate-redis")
    assert redis["spec"]["replicas"] == 1
    assert redis["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"  # the job queue's need
    secret = one(manifests, "Secret", "floodgate-redis")
    assert len(secret["data"]["password"]) >= 48
    assert one(manifests, "Service", "floodgate-redis")["spec"]["ports"][0]["port"] == 6379


# ----------------------------------------------------------------------------- the rest


def test_service_monitor_only_where_the_prometheus_operator_api_exists() -> None:
    assert not find(rendered(ci("hpa"), addons=False), "ServiceMonitor")
    monitor = one(rendered(ci("hpa")), "ServiceMonitor", "floodgate")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    service = one(rendered(ci("hpa")), "Service", "floodgate")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["name"] == "http"


def test_one_dashboard_config_map_per_generated_dashboard() -> None:
    sources = sorted(generate.DASHBOARD_SOURCE.glob("*.json"))
    assert sources, "grafana/dashboards/ has no dashboards"
    maps = find(rendered(), "ConfigMap")
    assert len(maps) == len(sources)
    by_key = {key: m for m in maps for key in m["data"]}
    for source in sources:
        config_map = by_key[source.name]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "Floodgate"}
        assert json.loads(config_map["data"][source.name]) == json.loads(source.read_text())
    moved = find(rendered(ci("namespaced-operator")), "ConfigMap")
    assert {m["metadata"]["namespace"] for m in moved} == {"monitoring"}
    assert {m["metadata"]["annotations"]["grafana_folder"] for m in moved} == {"Shop"}


def test_network_policies() -> None:
    manifests = rendered(ci("hpa"))
    api = one(manifests, "NetworkPolicy", "floodgate")
    redis = one(manifests, "NetworkPolicy", "floodgate-redis")
    assert api["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = api["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert len(ingress["from"]) == 2
    dns, *rest = api["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert rest[0]["ports"][0]["port"] == 5432
    sources = redis["spec"]["ingress"][0]["from"]
    components = {s["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for s in sources}
    assert components == {"api", "operator", "worker"}


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook() -> None:
    job = one(rendered(), "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    # Hooks run before the release's ServiceAccount exists: the default one, without a token.
    assert "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False
    (migrate,) = pod["containers"]
    assert migrate["args"] == ["migrate"]
    assert set(chart.env_of(migrate)) == {"FLOODGATE_DATABASE_URL", "FLOODGATE_LOG_LEVEL"}


def test_helm_test_pod_checks_readyz_with_a_pinned_image() -> None:
    pod = one(rendered(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "busybox:1.37.0"
    assert container["command"][-1] == "http://floodgate.floodgate.svc:80/readyz"
    assert pod["spec"]["securityContext"]["runAsUser"] == 65534


def test_dev_profile_reloads_from_a_writable_dir_under_a_read_only_root() -> None:
    pod = api_pod(rendered(ci("dev")))
    api = pod.container("api")
    assert api["args"] == ["serve", "--reload"]
    env = chart.env_of(api)
    assert env["PYTHONPATH"]["value"] == "/dev-src"
    assert env["FLOODGATE_WORKERS"]["value"] == "1"
    assert api["securityContext"]["readOnlyRootFilesystem"] is True
    seed = pod.container("dev-sources")
    assert seed["image"] == api["image"]
    mounts = {m["name"]: m["mountPath"] for m in api["volumeMounts"]}
    assert mounts["dev-src"] == "/dev-src"
    assert "emptyDir" in {v["name"]: v for v in pod.spec["volumes"]}["dev-src"]
    # Only the dev profile turns this on.
    assert "PYTHONPATH" not in chart.env_of(api_pod(rendered()).container("api"))


def test_selector_labels_never_carry_the_version() -> None:
    for m in rendered(ci("hpa")):
        selector = (m.get("spec") or {}).get("selector") or {}
        labels = selector.get("matchLabels", selector if m["kind"] == "Service" else {})
        assert "helm.sh/chart" not in labels, m
        assert "app.kubernetes.io/version" not in labels, m


# ----------------------------------------------------------------------------- generated copies


def test_the_chart_carries_exactly_the_generated_crd_and_dashboards() -> None:
    assert generate.stale_copies() == [], "run: make generate"


def test_the_readme_values_table_is_current() -> None:
    assert generate.readme_is_current(), "run: make generate"


def _leaves(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_every_value_is_documented() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = {key for key, _ in generate.documented_values()}
    undocumented = [
        leaf
        for leaf in _leaves(values)
        if not any(leaf == d or leaf.startswith(d + ".") for d in documented)
    ]
    assert not undocumented, f"add a `# --` comment in values.yaml for: {undocumented}"


# ----------------------------------------------------------------------------- k8s/dev, skaffold


def test_dev_manifests_are_valid_and_restricted() -> None:
    docs = [
        doc
        for path in sorted((REPO_ROOT / "k8s" / "dev").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    assert {d["kind"] for d in docs} == {"Secret", "Service", "Deployment"}
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert set(secrets) == {"floodgate-database", "floodgate-shared-redis"}
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    for pod in chart.pod_templates(docs):
        for c in pod.containers():
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
        assert pod.spec["securityContext"]["runAsNonRoot"] is True


def skaffold_configs() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((REPO_ROOT / "skaffold.yaml").read_text()) if doc]


def test_skaffold_yaml_matches_its_json_schema() -> None:
    configs = skaffold_configs()
    (version,) = {c["apiVersion"] for c in configs}
    schema_file = SKAFFOLD_SCHEMAS / f"{version.removeprefix('skaffold/')}.json"
    _require(
        None
        if schema_file.is_file()
        else f"{schema_file} is missing: run scripts/tools-skaffold.sh"
    )
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft7Validator(schema)
    for config in configs:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(config)]
        assert not errors, (config["metadata"]["name"], errors)
    bad = json.loads(json.dumps(configs[1]))
    bad["manifests"]["helm"]["releases"][0]["chartPth"] = "typo"
    assert list(validator.iter_errors(bad)), "the schema must reject unknown fields"


@pytest.fixture
def skaffold_config(tmp_path: Path) -> Path:
    """A global skaffold config of the test's own: no update check, no metrics, no survey prompt."""
    config = tmp_path / "skaffold-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "collect-metrics": False,
                    "update-check": False,
                    "survey": {"disable-prompt": True},
                },
                "kubeContexts": [],
            }
        )
    )
    return config


def _skaffold(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    _require(None if os.access(SKAFFOLD, os.X_OK) else f"{SKAFFOLD} is missing")
    _require(None if (HELM3_DIR / "helm").exists() else f"{HELM3_DIR / 'helm'} is missing")
    env = dict(os.environ)
    # skaffold 2.16 speaks to helm 3 (it calls `helm version --client` and post-renderers).
    env["PATH"] = os.pathsep.join([str(HELM3_DIR), str(SKAFFOLD.parent), env.get("PATH", "")])
    env.update(SKAFFOLD_CONFIG=str(config), SKAFFOLD_INTERACTIVE="false")
    return subprocess.run(
        [str(SKAFFOLD), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


def test_skaffold_parses_its_config_with_and_without_the_dev_profile(
    skaffold_config: Path,
) -> None:
    plain = _skaffold(skaffold_config, "diagnose", "--yaml-only")
    assert plain.returncode == 0, plain.stderr
    dev = _skaffold(skaffold_config, "diagnose", "--yaml-only", "--profile", "dev")
    assert dev.returncode == 0, dev.stderr
    configs = {c["metadata"]["name"]: c for c in yaml.safe_load_all(dev.stdout) if c}
    assert list(configs) == ["floodgate-dev-deps", "floodgate"]  # dependencies deploy first
    (artifact,) = configs["floodgate"]["build"]["artifacts"]
    assert artifact["docker"]["dockerfile"] == "service/Dockerfile"
    (rule,) = artifact["sync"]["manual"]
    assert (rule["dest"], rule["strip"]) == ("/dev-src", "service/")
    (release,) = configs["floodgate"]["manifests"]["helm"]["releases"]
    assert release["setValues"]["development.liveReload"] == "true"
    assert set(release["setValueTemplates"]) == {"image.repository", "image.tag", "image.digest"}
    assert "helm" in configs["floodgate"]["deploy"]
    assert configs["floodgate"]["portForward"][0]["localPort"] == 8000


def test_skaffold_renders_the_dev_deps_and_then_the_chart_offline(skaffold_config: Path) -> None:
    # --digest-source=tag: the image reference from the tagger, nothing built or pushed.
    done = _skaffold(
        skaffold_config, "render", "--offline", "--digest-source=tag", "--profile", "dev"
    )
    assert done.returncode == 0, done.stderr
    manifests = chart.parse_manifests(done.stdout)
    names = [f"{m['kind']}/{m['metadata']['name']}" for m in manifests]
    order = [
        names.index(expected)
        for expected in (
            "Deployment/floodgate-dev-postgres",
            "Deployment/floodgate-dev-redis",
            "Deployment/floodgate",
            "Deployment/floodgate-operator",
        )
    ]
    assert order[:2] < order[2:], names
    for m in manifests:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(m, version, strict=True)
    api = api_pod(tuple(manifests)).container("api")
    # The tagger's tag, not appVersion, and never all digits (Helm would make it a number).
    assert api["image"].startswith("floodgate:git-"), api
    assert api["args"] == ["serve", "--reload"]
    env = chart.env_of(api)
    assert env["FLOODGATE_LIMITS_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
        "floodgate-shared-redis"
    )

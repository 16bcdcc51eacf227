"""deploy/: the Kubernetes manifests against the Kubernetes schemas, offline, and the compose
file, Prometheus and Grafana files against what the service reads and exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # no type information
import pytest
import yaml

from polymarket_agents.agents import Shard
from polymarket_agents.service import OPTIONS, ServiceConfig, load_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "k8s"
KNOWN_ENV = {option.env for option in OPTIONS} | {"LOG_LEVEL", "POD_NAME"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in documents(K8S / name)]


def by_kind(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def agents_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_kustomization_lists_every_manifest() -> None:
    """kubectl apply -k deploy/k8s applies every manifest in the directory, and only those."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(on_disk)


RESOURCES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", RESOURCES, ids=lambda p: p.name)
def test_manifests_match_the_kubernetes_schemas(path: Path) -> None:
    """Every resource validates strictly (no unknown fields) against the newest Kubernetes
    schemas kubernetes-validate ships; no cluster needed."""
    version = kubernetes_validate.utils.latest_version()
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    """The validation is real: a misspelt field fails it."""
    statefulset = by_kind("StatefulSet", "agents")
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpget"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="httpget"):
        kubernetes_validate.validate(
            statefulset, kubernetes_validate.utils.latest_version(), strict=True
        )


def test_the_statefulset_runs_shards_with_standbys_probes_and_a_grace_period() -> None:
    """Ordinals map to shards with one standby each; probes, shutdown time, scraping and
    resources are set; the configuration the pods get is one the service accepts."""
    statefulset = by_kind("StatefulSet", "agents")
    pod = statefulset["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = agents_env(container)
    assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
    count = int(env["POLYMARKET_AGENTS_SHARD_COUNT"])
    replicas = statefulset["spec"]["replicas"]
    assert replicas == 2 * count
    shards = [Shard.from_pod_name(f"agents-{i}", count) for i in range(replicas)]
    assert sorted(s.index for s in shards) == sorted(list(range(count)) * 2)
    config = load_config({}, {k: v for k, v in env.items() if k.startswith("POLYMARKET_")})
    assert isinstance(config, ServiceConfig)
    assert config.shard_count == count
    assert isinstance(config.db_path, str)
    assert config.db_path.startswith("postgresql://")
    assert pod["spec"]["terminationGracePeriodSeconds"] > config.grace_period + 5
    port = container["ports"][0]["containerPort"]
    assert config.http_port == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["POLYMARKET_AGENTS_DB_PASSWORD_FILE"].startswith(mounts["db-secret"] + "/")


def test_the_service_and_budget_select_the_agents() -> None:
    """The headless Service and the PodDisruptionBudget select exactly the agents' pods,
    and the budget lets one go at a time."""
    labels = by_kind("StatefulSet", "agents")["spec"]["template"]["metadata"]["labels"]
    service = by_kind("Service", "agents")
    pdb = by_kind("PodDisruptionBudget", "agents")
    assert by_kind("StatefulSet", "agents")["spec"]["serviceName"] == "agents"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_postgres_replicas_prometheus_and_grafana() -> None:
    """Three shard holders and a standby on one PostgreSQL, each configured with settings
    the service accepts, stopped with more time than their grace period."""
    services = compose()["services"]
    assert {"postgres", "simulator", "prometheus", "grafana"} <= set(services)
    agents = {name: s for name, s in services.items() if name.startswith("agents-")}
    shards = []
    for name, service in agents.items():
        env = service["environment"]
        assert set(env) <= KNOWN_ENV, (name, set(env) - KNOWN_ENV)
        config = load_config({}, {k: str(v) for k, v in env.items() if k.startswith("POLY")})
        assert config.shard is not None
        shards.append(config.shard)
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace > config.grace_period
        assert service["secrets"] == ["db-password"]
    assert sorted(map(str, shards)) == ["0/3", "0/3", "1/3", "2/3"]
    secret = compose()["secrets"]["db-password"]["file"]
    assert (DEPLOY / secret).is_file()


def test_prometheus_scrapes_every_replica() -> None:
    """Every agents service of the compose file is a Prometheus target, with its shard."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    targets = {
        target.split(":")[0]: group["labels"]["shard"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    agents = {
        name: str(Shard.parse(s["environment"]["POLYMARKET_AGENTS_SHARD"]).index)
        for name, s in compose()["services"].items()
        if name.startswith("agents-")
    }
    assert targets == agents


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "agents.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return {m for expr in exprs for m in re.findall(r"polymarket_agents_\w+", expr)}


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    """The datasource and dashboard provider point at what compose mounts; the dashboard
    shows events/s, ingest latency, queue depth, restarts, readiness, shards, trades, P&L."""
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "agents.yaml").read_text()
    )
    mounts = compose()["services"]["grafana"]["volumes"]
    assert any(
        m.endswith(":" + provider["providers"][0]["options"]["path"] + ":ro") for m in mounts
    )
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "agents.json").read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {uid}
    assert dashboard_metrics() >= {
        "polymarket_agents_events_total",
        "polymarket_agents_ingest_latency_seconds",
        "polymarket_agents_queue_depth",
        "polymarket_agents_task_restarts_total",
        "polymarket_agents_ready",
        "polymarket_agents_shard_holder",
        "polymarket_agents_paper_fills_total",
        "polymarket_agents_paper_pnl_usdc",
    }

"""deploy/: the Kubernetes manifests are consistent with each other and with the proxy.

No cluster and no container engine here: this checks structure (kinds, selectors,
ports, probes, the mounted config), that the ConfigMap's server config and policy
validate with caproute's own checks, and, when hadolint is installed (``make test``
installs it), that the Dockerfile lints clean.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from caproute._core.policy_check import check_policy_text
from caproute._proxy._settings import check_config_text

ROOT = Path(__file__).parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((MANIFESTS / name).read_text())
    assert isinstance(document, dict)
    return document


def test_kustomization_lists_every_manifest() -> None:
    listed = set(load("kustomization.yaml")["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}


def test_kinds_and_api_versions() -> None:
    assert (load("configmap.yaml")["apiVersion"], load("configmap.yaml")["kind"]) == (
        "v1",
        "ConfigMap",
    )
    assert (load("deployment.yaml")["apiVersion"], load("deployment.yaml")["kind"]) == (
        "apps/v1",
        "Deployment",
    )
    assert (load("service.yaml")["apiVersion"], load("service.yaml")["kind"]) == ("v1", "Service")


def test_the_service_selects_the_deployments_pods_on_the_served_port() -> None:
    deployment, service = load("deployment.yaml"), load("service.yaml")
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["replicas"] >= 2
    container = spec["template"]["spec"]["containers"][0]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in port_names
    config = _server_config()
    assert port_names[service_port["targetPort"]] == config["port"]
    assert config["host"] == "0.0.0.0"  # reachable from outside the pod


def test_probes_use_the_health_endpoint() -> None:
    container = load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/caproute/health"
        assert check["port"] in {p["name"] for p in container["ports"]}


def test_the_mounted_config_is_the_one_the_container_reads() -> None:
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_path = Path(env["CAPROUTE_CONFIG"])
    (volume_name,) = [n for n, path in mounts.items() if config_path.parent == Path(path)]
    assert volumes[volume_name]["configMap"]["name"] == load("configmap.yaml")["metadata"]["name"]
    assert config_path.name in load("configmap.yaml")["data"]


def test_the_grace_period_outlasts_the_shutdown_timeout() -> None:
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > _server_config()["shutdown_timeout"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def _server_config() -> dict[str, Any]:
    data = load("configmap.yaml")["data"]
    values, errors = check_config_text(
        data["caproute.yaml"], filename="/etc/caproute/caproute.yaml"
    )
    assert errors == ()
    assert values is not None
    return values


def test_the_configmap_config_and_policy_validate() -> None:
    data = load("configmap.yaml")["data"]
    config = _server_config()
    assert config["policy"].name in data
    policy, errors = check_policy_text(data[config["policy"].name], filename="routing.yaml")
    assert errors == () and policy is not None


def test_the_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint") or str(
        Path(__file__).parents[2] / ".venv" / "bin" / "hadolint"
    )
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (make test installs it)")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

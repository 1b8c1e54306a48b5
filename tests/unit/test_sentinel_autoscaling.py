"""A pool that autoscales on our Sentinel broker: KEDA asks the Sentinels, as the workers do, and may reach them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from celery_platform.render import render_documents

ROOT = Path(__file__).resolve().parents[2]


def _render(tmp_path: Path, broker: dict[str, Any]) -> list[dict[str, Any]]:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    config = document["config"]
    config["celery-platform:broker"] = broker
    config["celery-platform:redis"] = {"persistent": True}
    config["celery-platform:quota"] = {"persistentVolumeClaims": 4}
    config["celery-platform:pools"] = [
        {"name": "main", "queues": ["default", "high"], "autoscaling": {"maxReplicas": 3, "prioritySteps": [0, 3]}}
    ]
    config["celery-platform:queues"] = ["default", "high"]
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    return render_documents("dev", tmp_path)


def test_keda_asks_every_sentinel_for_the_master_with_both_passwords_from_the_secret(tmp_path: Path) -> None:
    docs = _render(tmp_path, {"type": "sentinel", "sentinel": {"masterName": "jobs", "sentinels": 5}})
    namespace = next(d["metadata"]["name"] for d in docs if d["kind"] == "Namespace")
    [scaled] = [d for d in docs if d["kind"] == "ScaledObject"]
    sentinels = ",".join(
        f"redis-sentinel-{i}.redis-sentinel-headless.{namespace}.svc.cluster.local:26379" for i in range(5)
    )
    triggers = scaled["spec"]["triggers"]
    assert [t["name"] for t in triggers] == ["q0p0", "q0p3", "q1p0", "q1p3"]
    for trigger in triggers:
        assert trigger["type"] == "redis-sentinel"
        assert trigger["metadata"]["addresses"] == sentinels
        assert trigger["metadata"]["sentinelMaster"] == "jobs"
        assert "address" not in trigger["metadata"]
    [auth] = [d for d in docs if d["kind"] == "TriggerAuthentication"]
    refs = {r["parameter"]: r["key"] for r in auth["spec"]["secretTargetRef"]}
    assert refs == {"password": "REDIS_PASSWORD", "sentinelPassword": "SENTINEL_PASSWORD"}
    # KEDA's operator polls the Sentinels, then the master they name: both policies admit it.
    for name in ("redis-node-ingress", "redis-sentinel-ingress"):
        [policy] = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == name]
        peers = policy["spec"]["ingress"][0]["from"]
        assert any(
            p.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": "keda"} for p in peers
        )


def test_a_plain_redis_broker_keeps_keda_s_redis_trigger(tmp_path: Path) -> None:
    docs = _render(tmp_path, {"type": "redis"})
    [scaled] = [d for d in docs if d["kind"] == "ScaledObject"]
    assert {t["type"] for t in scaled["spec"]["triggers"]} == {"redis"}
    assert all("address" in t["metadata"] for t in scaled["spec"]["triggers"])

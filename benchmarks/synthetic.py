"""A synthetic stack of N one-queue pools: the input that shows how the render scales with the pools."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def synthetic_overrides(pools: int) -> dict[str, Any]:
    """Config keys that replace prod's pools by ``pools`` small pools, with a quota that admits them all."""
    queues = [f"q{i}" for i in range(pools)]
    pool_list = [
        {
            "name": f"p{i}",
            "queues": [queues[i]],
            "replicas": 1,
            "concurrency": 1,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "200m", "memory": "512Mi"}},
        }
        for i in range(pools)
    ]
    quota = {
        "requestsCpu": "200",
        "requestsMemory": "400Gi",
        "limitsCpu": "400",
        "limitsMemory": "800Gi",
        "pods": 1000,
        "persistentVolumeClaims": 2,
        "requestsStorage": "20Gi",
    }
    return {"queues": queues, "pools": pool_list, "quota": quota}


def write_synthetic_project(directory: Path, pools: int) -> str:
    """Write a project (this one's Pulumi.yaml and infra/) with a stack of ``pools`` pools; return its name."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
    if not (directory / "infra").exists():
        (directory / "infra").symlink_to(ROOT / "infra")
    stack = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    stack["config"].update({f"celery-platform:{k}": v for k, v in synthetic_overrides(pools).items()})
    name = f"synthetic{pools}"
    (directory / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(stack))
    return name

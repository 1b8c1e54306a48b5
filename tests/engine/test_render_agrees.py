"""The offline render and the real engine give the same verdict on the same stack config.

A corpus of stack configs, valid and invalid, goes to both ``python -m celery_platform.render`` (what
``make render`` runs) and ``pulumi preview``. Both must accept it, or both must refuse it naming the
key the case breaks. The corpus covers what only the engine used to see: a plain-text value for a
secret key, a value of the wrong declared type (a structured key as YAML in a string, the form before
native config, among them), a missing required secret, and a misspelled config namespace.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.conftest import REPO, Project, Toolchain, make_project
from tests.kube_testenv import KubeAPI

P = "celery-platform:"
DATABASE_URL = "postgresql://app:pw@db.internal:5432/app"
WORKERS = 3  # cases run side by side; each is a few CLI processes


def _dev() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"])


def _dev_yaml(key: str) -> Any:
    value = _dev()[P + key]
    return yaml.safe_load(value) if isinstance(value, str) else value


def _pools(**change: Any) -> list[Any]:
    pools: list[Any] = _dev_yaml("pools")
    pools[0].update(change)
    return pools


def _pool_resources(requests: dict[str, str], limits: dict[str, str]) -> list[Any]:
    return _pools(resources={"requests": requests, "limits": limits})


def _prod_sentinel(redis: dict[str, Any] | None = None, pvcs: int = 4, **sentinel: Any) -> dict[str, Any]:
    """prod switched to ``broker.type: sentinel`` (its claims quota raised to ``pvcs``), ``sentinel`` set."""
    quota: dict[str, Any] = dict(yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"][P + "quota"])
    config: dict[str, Any] = {
        P + "broker": {"type": "sentinel", **({"sentinel": sentinel} if sentinel else {})},
        P + "quota": {**quota, "persistentVolumeClaims": pvcs},
    }
    if redis is not None:
        config[P + "redis"] = redis
    return config


def _limit_range(**change: Any) -> dict[str, Any]:
    limit_range: dict[str, Any] = _dev_yaml("limitRange")
    limit_range.update(change)
    return limit_range


@dataclass(frozen=True)
class Case:
    """One stack config: the dev stack with ``config`` overriding keys (None removes one)."""

    name: str
    key: str | None
    """The key both must name when refusing; None: both must accept."""
    config: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    """Keys set with ``pulumi config set --secret`` (encrypted in the stack file)."""
    base: str = "dev"


VALID = [
    Case("dev as committed", None),
    Case("prod as committed", None, base="prod"),
    Case("a Sentry DSN set as a secret", None, secrets={"sentryDsn": "https://0123456789abcdef@o0.ingest.sentry.io/1"}),
    Case("a Redis password set as a secret", None, secrets={"redisPassword": "Url-safe_password-0123456789"}),
    Case("two replicas", None, {P + "pools": _pools(replicas=2)}),
    Case("beat off", None, {P + "beat": {"enabled": False}}),
    Case("a shorter longest task", None, {P + "longestTaskSeconds": "60"}),
    Case("an integer given as a number", None, {P + "longestTaskSeconds": 90}),
    Case("another cluster domain", None, {P + "clusterDomain": "example.internal"}),
    Case("a tighter heartbeat", None, {P + "heartbeatMaxAgeSeconds": "30"}),
    Case("one key rotated", None, {P + "rotation": {"djangoSecretKey": 1}}),
    Case("a longer rollout timeout", None, {P + "rolloutTimeoutSeconds": "900"}),
    Case("another non-root user", None, {P + "runAsUser": "20001"}),
    Case("the baseline Pod Security level", None, {P + "podSecurityLevel": "baseline"}),
    Case("egress to the database network", None, {P + "egress": [{"cidr": "10.1.0.0/16", "ports": [5432]}]}),
    Case("an existing service account", None, {P + "pod": {"serviceAccount": {"name": "celery-app"}}}),
    Case("an autoscaled pool", None, {P + "pools": _pools(autoscaling={"minReplicas": 0, "maxReplicas": 3})}),
    Case("KEDA in another namespace", None, {P + "kedaOperator": {"namespace": "platform-keda"}}),
    Case("prod with Sentinel, its claims quota raised", None, _prod_sentinel(), base="prod"),
    Case("every structured key at its default, spelled out", None, {P + "taskRoutes": {}, P + "monitoring": {}}),
]

INVALID = [
    # What the engine refuses before the program runs.
    Case("a missing required secret", "databaseUrl", {P + "databaseUrl": None}),
    Case("a plain-text value for a secret key", "databaseUrl", {P + "databaseUrl": DATABASE_URL}),
    Case("pools as YAML in a string, the old form", "pools", {P + "pools": "- {name: main, queues: [default]}"}),
    Case("a LimitRange as YAML in a string, the old form", "limitRange", {P + "limitRange": "max: {cpu: '1'}"}),
    Case("a native map for a string key", "celeryApp", {P + "celeryApp": {"name": "app"}}),
    Case("a list of strings for a list of objects", "egress", {P + "egress": ["10.1.0.0/16"]}),
    Case("a list for an object key", "taskRoutes", {P + "taskRoutes": ["app.tasks.send"]}),
    Case("a native list for the namespace", "namespace", {P + "namespace": ["celery-dev"]}),
    Case("a string for an array key", "queues", {P + "queues": "default"}),
    Case("a word for the rotation map", "rotation", {P + "rotation": "two"}),
    Case("a fraction for an integer", "longestTaskSeconds", {P + "longestTaskSeconds": "1.5"}),
    # What the program refuses.
    Case("a misspelled config namespace", "celery-platfrom:namespace", {"celery-platfrom:namespace": "celery-x"}),
    Case("an unknown key", "replicas", {P + "replicas": "3"}),
    Case("a namespace with capitals", "namespace", {P + "namespace": "Celery_Dev"}),
    Case("a namespace with a trailing newline", "namespace", {P + "namespace": "celery-dev\n"}),
    Case(
        "a cluster domain that redirects the broker",
        "clusterDomain",
        {P + "clusterDomain": "cluster.local@evil.example"},
    ),
    Case("a negative rotation", "rotation", {P + "rotation": {"redisPassword": -1}}),
    Case("a word for the preflight switch", "preflight", {P + "preflight": "sometimes"}),
    Case(
        "a LimitRange ratio below 1", "limitRange", {P + "limitRange": _limit_range(maxLimitRequestRatio={"cpu": 0.5})}
    ),
    Case(
        "LimitRange defaults above its max",
        "limitRange",
        {P + "limitRange": _limit_range(default={"cpu": "2", "memory": "128Mi"})},
    ),
    Case("a quota that is not a quantity", "quota", {P + "quota": {"requestsCpu": "abc"}}),
    Case("a quota too small for the pods", "quota", {P + "quota": {"pods": 1}}),
    Case("an empty Celery app", "celeryApp", {P + "celeryApp": " "}),
    Case("an unpinned image", "image", {P + "image": "ghcr.io/acme/celery-sample-app"}),
    Case("a latest image", "image", {P + "image": "ghcr.io/acme/celery-sample-app:latest"}),
    Case("no longest task", "longestTaskSeconds", {P + "longestTaskSeconds": "0"}),
    Case("a heartbeat too short", "heartbeatMaxAgeSeconds", {P + "heartbeatMaxAgeSeconds": "5"}),
    Case("a queue no pool consumes", "queues", {P + "queues": [*_dev_yaml("queues"), "orphan"]}),
    Case("a route to an unknown queue", "taskRoutes", {P + "taskRoutes": {"app.tasks.send": "nowhere"}}),
    Case("a route to a list of queues", "taskRoutes", {P + "taskRoutes": {"app.tasks.send": ["a", "b"]}}),
    Case(
        "a Redis limit four times its request",
        "redis",
        {
            P + "redis": {
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"cpu": "200m", "memory": "128Mi"},
                }
            }
        },
    ),
    Case(
        "a Redis storage size that is no quantity", "redis", {P + "redis": {"persistent": True, "storageSize": "5Gx"}}
    ),
    Case("an unknown Redis key", "redis", {P + "redis": {"replicas": 2}}),
    Case("no pool at all", "pools", {P + "pools": []}),
    Case("a rollout timeout too short to roll out", "rolloutTimeoutSeconds", {P + "rolloutTimeoutSeconds": "5"}),
    Case("root as the pods' user", "runAsUser", {P + "runAsUser": "0"}),
    Case("an unknown Pod Security level", "podSecurityLevel", {P + "podSecurityLevel": "strict"}),
    Case("a word for createNamespace", "createNamespace", {P + "createNamespace": "perhaps"}),
    Case(
        "a word for the Fernet key protection", "protectFieldEncryptionKey", {P + "protectFieldEncryptionKey": "maybe"}
    ),
    Case("egress to an address that is no CIDR", "egress", {P + "egress": [{"cidr": "10.1.0.0/33", "ports": [5432]}]}),
    Case("an unknown pod setting", "pod", {P + "pod": {"hostNetwork": True}}),
    Case("an unknown broker type", "broker", {P + "broker": {"type": "rabbitmq"}}),
    Case("two Sentinels", "broker.sentinel.sentinels", _prod_sentinel(sentinels=2), base="prod"),
    Case("a quorum above the Sentinels", "broker.sentinel.quorum", _prod_sentinel(quorum=4), base="prod"),
    Case(
        "Sentinel over a Redis without volumes",
        "redis.persistent",
        _prod_sentinel(redis={"persistent": False}),
        base="prod",
    ),
    Case(
        "a write bound that no replica may miss",
        "broker.sentinel.minReplicasToWrite",
        _prod_sentinel(minReplicasToWrite=2),
        base="prod",
    ),
    Case(
        "a master name with a space", "broker.sentinel.masterName", _prod_sentinel(masterName="my master"), base="prod"
    ),
    Case(
        "Sentinel on prod's claims quota, which holds one Redis volume",
        "quota.persistentVolumeClaims",
        _prod_sentinel(pvcs=2),
        base="prod",
    ),
    Case("an unknown monitoring setting", "monitoring", {P + "monitoring": {"grafana": True}}),
    Case("a KEDA namespace with capitals", "kedaOperator", {P + "kedaOperator": {"namespace": "KEDA"}}),
    Case(
        "autoscaling whose max is below its min",
        "pools",
        {P + "pools": _pools(autoscaling={"minReplicas": 3, "maxReplicas": 2})},
    ),
    Case("a rotation that bumps every key at once", "rotation", {P + "rotation": 2}),
    Case("negative replicas", "pools", {P + "pools": _pools(replicas=-1)}),
    Case("no concurrency", "pools", {P + "pools": _pools(concurrency=0)}),
    Case(
        "millibytes of memory",
        "pools",
        {P + "pools": _pool_resources({"cpu": "100m", "memory": "512m"}, {"cpu": "200m", "memory": "1Gi"})},
    ),
    Case(
        "a doubled unit",
        "pools",
        {P + "pools": _pool_resources({"cpu": "400mm", "memory": "256Mi"}, {"cpu": "800m", "memory": "512Mi"})},
    ),
    Case("a pool name with capitals", "pools", {P + "pools": _pools(name="Main")}),
    Case("a queue name with a comma", "pools", {P + "pools": _pools(queues=["default", "a,b"])}),
    Case(
        "a pool over the LimitRange ratio",
        "pools",
        {P + "pools": _pool_resources({"cpu": "100m", "memory": "256Mi"}, {"cpu": "300m", "memory": "512Mi"})},
    ),
    Case(
        "a pool over the LimitRange max",
        "pools",
        {P + "pools": _pool_resources({"cpu": "600m", "memory": "1Gi"}, {"cpu": "1200m", "memory": "2Gi"})},
    ),
    Case("a bare string for the queues of a pool", "pools", {P + "pools": _pools(queues="default")}),
    Case("beat that never wakes", "beat", {P + "beat": {"maxIntervalSeconds": 0}}),
    Case("an unknown beat key", "beat", {P + "beat": {"replicas": 2}}),
    Case(
        "an init container over the LimitRange max",
        "initResources",
        {P + "initResources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": 2, "memory": "32Mi"}}},
    ),
    Case(
        "an init container over the ratio",
        "initResources",
        {
            P + "initResources": {
                "requests": {"cpu": "10m", "memory": "16Mi"},
                "limits": {"cpu": "50m", "memory": "32Mi"},
            }
        },
    ),
    Case("a database URL that is not PostgreSQL", "databaseUrl", secrets={"databaseUrl": "mysql://a:b@db/x"}),
    Case(
        "a plain-text optional secret", "sentryDsn", {P + "sentryDsn": "https://0123456789abcdef@o0.ingest.sentry.io/1"}
    ),
    Case("a Sentry DSN without a project", "sentryDsn", secrets={"sentryDsn": "https://key@sentry.example"}),
    Case("a short Fernet key", "fieldEncryptionKey", secrets={"fieldEncryptionKey": "c2hvcnQ="}),
    Case(
        "a Django key with the insecure prefix",
        "djangoSecretKey",
        secrets={"djangoSecretKey": "django-insecure-" + "x" * 60},
    ),
    Case("a Redis password that breaks the URL", "redisPassword", secrets={"redisPassword": "p@ss/word:with#url"}),
]
CORPUS = VALID + INVALID


def test_the_corpus_is_large_and_covers_every_declared_key() -> None:
    assert len(CORPUS) >= 50
    declared = set(yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"])
    assert declared <= {c.key for c in INVALID}


def _secret_id(index: int, key: str) -> str:
    """The template key that holds case ``index``'s encrypted value for ``key``."""
    return f"case{index:03d}{key}"


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    text: str

    def names(self, key: str) -> bool:
        return key in self.text


def _run_case(project: Project, index: int, case: Case, salt: str, secure: dict[str, str]) -> tuple[Verdict, Verdict]:
    stack = f"case{index:03d}"
    config = dict(yaml.safe_load((REPO / f"Pulumi.{case.base}.yaml").read_text())["config"])
    config[P + "databaseUrl"] = {"secure": secure["databaseUrl"]}
    for key, value in case.config.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    for key in case.secrets:
        config[P + key] = {"secure": secure[_secret_id(index, key)]}
    (project.dir / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"encryptionsalt": salt, "config": config}))
    project.pulumi("stack", "init", stack)
    render = subprocess.run(
        [sys.executable, "-m", "celery_platform.render", stack, "--project-dir", str(project.dir), "-o", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**project.env, "PATH": f"{Path(sys.executable).parent}:{project.env['PATH']}"},
    )
    preview = project.pulumi("preview", "--stack", stack, check=False, timeout=600)
    project.pulumi("stack", "rm", "--stack", stack, "--yes", "--force", check=False)
    return (
        Verdict(render.returncode == 0, render.stdout + render.stderr),
        Verdict(preview.returncode == 0, preview.stdout + preview.stderr),
    )


@pytest.fixture(scope="module")
def verdicts(
    tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain, cluster: KubeAPI, shared_venvs: None
) -> dict[str, tuple[Verdict, Verdict]]:
    project = make_project(tmp_path_factory.mktemp("agree"), toolchain, cluster)
    # One salt for every case, so each encrypted value is made once, by the CLI, and reused.
    project.pulumi("stack", "init", "template")
    project.pulumi("config", "set", "--secret", "--stack", "template", "databaseUrl", DATABASE_URL)
    for index, case in enumerate(CORPUS):
        for key, value in case.secrets.items():
            project.pulumi("config", "set", "--secret", "--stack", "template", P + _secret_id(index, key), value)
    template = project.stack_file("template")
    salt = template["encryptionsalt"]
    secure = {k[len(P) :]: v["secure"] for k, v in template["config"].items()}
    project.pulumi("stack", "rm", "--stack", "template", "--yes", "--force")
    (project.dir / "Pulumi.template.yaml").unlink(missing_ok=True)
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {case.name: pool.submit(_run_case, project, i, case, salt, secure) for i, case in enumerate(CORPUS)}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_render_and_preview_give_the_same_verdict(case: Case, verdicts: dict[str, tuple[Verdict, Verdict]]) -> None:
    render, preview = verdicts[case.name]
    if case.key is None:
        assert preview.accepted, preview.text[-3000:]
        assert render.accepted, render.text[-3000:]
    else:
        assert not preview.accepted and preview.names(case.key), preview.text[-3000:]
        assert not render.accepted and render.names(case.key), render.text[-3000:]

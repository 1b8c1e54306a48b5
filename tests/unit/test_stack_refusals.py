"""Every bad stack file gets one clear refusal (exit 2, `field: problem (got X, expected Y)`), never a crash."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_platform import render
from celery_platform.config.problems import ValidationError
from celery_platform.config.stack import parse_stack_config
from celery_platform.resources.preflight import OFFLINE

ROOT = Path(__file__).resolve().parents[2]
DEV = (ROOT / "Pulumi.dev.yaml").read_text()
INIT = "encryptionsalt: v1:c2FsdA==:v1:abc\n"
DB = "  celery-platform:databaseUrl:\n    secure: v1:ciphertext\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    return tmp_path


def rendered(project: Path, stack: str | bytes) -> tuple[int, str, str]:
    """Render ``stack`` as the dev stack of ``project`` in-process: exit code, stdout, stderr."""
    data = stack.encode() if isinstance(stack, str) else stack
    (project / "Pulumi.dev.yaml").write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = render.main(["dev", "--project-dir", str(project)])
    return code, out.getvalue(), err.getvalue()


def refused(project: Path, stack: str | bytes) -> str:
    code, out, err = rendered(project, stack)
    assert (code, out) == (2, ""), err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def with_key(key: str, value: Any) -> str:
    """DEV with one key set to ``value`` (a Python value, dumped as the stack file's YAML)."""
    document = yaml.safe_load(DEV)
    document["config"][f"celery-platform:{key}"] = value
    return yaml.safe_dump(document, sort_keys=False)


def with_structured(key: str, text: str) -> str:
    """DEV with ``key`` set to the YAML ``text``, written as YAML in the stack file (indented under the key)."""
    document = yaml.safe_load(DEV)
    document["config"].pop(f"celery-platform:{key}", None)
    head = yaml.safe_dump(document, sort_keys=False)
    return head + f"  celery-platform:{key}:\n" + "".join(f"    {line}\n" for line in text.splitlines())


def key_line(stack: str, key: str) -> int:
    """The 1-based line of ``key`` in the stack file text ``stack``."""
    return stack.splitlines().index(f"  celery-platform:{key}:") + 1


def test_fails_when_the_stack_file_is_not_yaml_and_gives_line_and_column(project: Path) -> None:
    err = refused(project, DEV + "  celery-platform:image: [unclosed\n")
    assert "Pulumi.dev.yaml: not valid YAML at line" in err and "column" in err


def test_fails_when_the_stack_file_is_not_utf8(project: Path) -> None:
    err = refused(project, DEV.encode() + b"  celery-platform:celeryApp: caf\xe9\n")
    assert "is not UTF-8" in err and f"line {DEV.count(chr(10)) + 1}, column 33" in err


def test_fails_when_the_stack_file_is_a_list(project: Path) -> None:
    assert "Pulumi.dev.yaml: is not a mapping" in refused(project, "- config\n")


def test_fails_when_config_is_not_a_mapping(project: Path) -> None:
    assert "config: is not a mapping of keys" in refused(project, "config: [1, 2]\n")


def test_fails_quickly_when_a_structured_key_holds_an_alias_bomb(project: Path) -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    start = time.monotonic()
    err = refused(project, with_structured("redis", bomb))
    assert time.monotonic() - start < 10
    assert "Pulumi.dev.yaml: not valid YAML at line" in err and "alias bomb" in err
    assert len(err) < 2000


def test_fails_when_a_structured_key_nests_too_deep(project: Path) -> None:
    assert "nested deeper than" in refused(project, with_structured("beat", "a: " + "[" * 500))


def test_fails_when_a_structured_key_has_a_yaml_error_and_gives_key_line_and_column(project: Path) -> None:
    stack = with_structured("pools", "- name: main\n  queues: [default\n")
    err = refused(project, stack)
    assert f"Pulumi.dev.yaml: not valid YAML at line {key_line(stack, 'pools') + 3}, column 1" in err


def test_fails_when_a_value_is_null(project: Path) -> None:
    assert "celery-platform:celeryApp: is null (got null" in refused(project, with_key("celeryApp", None))


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("namespace", "celery-dev\n", "namespace: not a valid RFC 1123 label"),
        ("clusterDomain", "cluster.local@evil.example", "clusterDomain: not a valid DNS subdomain"),
        ("clusterDomain", "cluster.local/x", "clusterDomain: not a valid DNS subdomain"),
        ("clusterDomain", "Cluster.Local", "clusterDomain: not a valid DNS subdomain"),
        ("image", "ghcr.io/acme/app:", "image: is not a valid image reference"),
        ("image", "ghcr.io/acme/app@", "image: is not a valid image reference"),
        ("image", "ghcr.io//app:1", "image: is not a valid image reference"),
        ("image", "ghcr.io/acme/app:1 2", "image: is not a valid image reference"),
        ("celeryApp", "my app", "celeryApp: not a Celery app name"),
        ("longestTaskSeconds", 1e20, "longestTaskSeconds"),
        ("longestTaskSeconds", 9007199254740990, "longestTaskSeconds: too large"),
        ("queues", ["default", "a,b"], "queues[1]: not a usable queue name"),
        ("queues", [""], "queues[0]: not a usable queue name"),
        ("rotation", {"redisPassword": -1}, "rotation.redisPassword: too small"),
    ],
)
def test_fails_when_a_plain_key_is_invalid_and_names_it(project: Path, key: str, value: Any, field: str) -> None:
    assert f"  - {field}" in refused(project, with_key(key, value))


POOL = "- name: main\n  queues: [default, high, low, maintenance, email, reports, media, webhooks]\n"


@pytest.mark.parametrize(
    ("key", "text", "field"),
    [
        ("pools", '- name: "main\\n"\n  queues: [default]\n', "pools[0].name: not a valid RFC 1123 label"),
        ("pools", POOL + "  replicas: 3000000000\n", "pools[0].replicas: too large"),
        ("pools", POOL + "  concurrency: 100000\n", "pools[0].concurrency: leaves"),
        ("pools", POOL + "  replicas: 0\n", "queues[default]: only pools with 0 replicas consume this queue"),
        ("pools", "- name: main\n  queues: ['a,b']\n", "pools[0].queues[0]: not a usable queue name"),
        ("quota", "requestsMemory: 99999999999999999999999Mi", "quota.requestsMemory: not a memory quantity"),
        ("limitRange", "maxLimitRequestRatio: {cpu: 500}", "limitRange.maxLimitRequestRatio.cpu: is above max/min"),
        ("limitRange", "maxLimitRequestRatio: {cpu: 5000}", "limitRange.maxLimitRequestRatio.cpu: not a usable ratio"),
        # The engine cannot pass NaN to the program (JSON has none): the file is refused as a whole.
        ("limitRange", "maxLimitRequestRatio: {cpu: .nan}", "celery-platform:limitRange: is not a finite number"),
        ("redis", "storageSize: 1e3Mi", "redis.storageSize: not a memory quantity"),
        ("redis", "persistent: true\nstorageClass: Bad_Class", "redis.storageClass: not a valid DNS subdomain"),
        ("redis", "image: 'redis:7 2'", "redis.image: is not a valid image reference"),
        ("initResources", "{requests: {cpu: 1m, memory: 16Mi}, limits: {cpu: 2m, memory: 32Mi}}", "initResources"),
    ],
)
def test_fails_when_a_structured_key_is_invalid_and_names_the_field(
    project: Path, key: str, text: str, field: str
) -> None:
    assert f"  - {field}" in refused(project, with_structured(key, text))


@pytest.mark.parametrize(
    "quantity", ["\u0661\u0660\u0660m", "2_0", "1K", "1e3Mi", "100m\n", "\t100m", "100 m", "0x10", "1e999"]
)
def test_fails_when_a_quantity_is_outside_the_api_servers_grammar(project: Path, quantity: str) -> None:
    limits = {"cpu": "100m", "memory": "256Mi"}
    # JSON quotes every string, so a quantity that looks like a number (1e999) stays one.
    text = json.dumps({"resources": {"requests": {"cpu": quantity, "memory": "128Mi"}, "limits": limits}})
    assert "  - beat.resources.requests.cpu: not a CPU quantity" in refused(project, with_structured("beat", text))


def test_init_container_problems_name_init_resources_once(project: Path) -> None:
    text = "{requests: {cpu: 1m, memory: 16Mi}, limits: {cpu: 20m, memory: 32Mi}}"
    err = refused(project, with_structured("initResources", text))
    assert err.count("  - initResources.requests.cpu: is below the LimitRange min") == 1
    assert "wait-for-broker" not in err


def test_quota_messages_use_the_stack_files_own_units(project: Path) -> None:
    err = refused(project, with_structured("quota", "requestsMemory: 1Gi\nlimitsMemory: 8Gi"))
    line = next(line for line in err.splitlines() if "quota.requestsMemory: the worst case" in line)
    assert "expected at most 1Gi" in line and "Gi (" in line and "Mi" not in line.split("(got ")[1].split(" (")[0]


def test_fails_when_a_config_namespace_is_misspelled_and_suggests_ours(project: Path) -> None:
    err = refused(project, DEV + "  celery-platfrom:namespace: celery-prod\n")
    assert "celery-platfrom:namespace: unknown config namespace; did you mean 'celery-platform'?" in err


def test_other_providers_namespaces_are_allowed(project: Path) -> None:
    code, _, err = rendered(project, DEV + "  kubernetes:context: kind\n  random:x: y\n  pulumi:tags: z\n")
    assert code == 0, err


def test_fails_when_a_key_is_unknown_and_suggests_the_closest(project: Path) -> None:
    err = refused(project, DEV + "  celery-platform:clusterDomian: cluster.local\n")
    assert "clusterDomian: unknown config key; did you mean 'clusterDomain'?" in err


def test_fails_when_a_misspelled_secret_key_holds_a_url_and_never_shows_it(project: Path) -> None:
    err = refused(project, DEV + "  celery-platform:databaseURL: postgresql://app:hunter2pw@db:5432/app\n")
    assert "databaseURL: unknown config key; did you mean 'databaseUrl'?" in err
    assert "hunter2pw" not in err


def test_fails_when_a_key_is_empty_and_names_it_quoted(project: Path) -> None:
    assert "  - '': config key without a namespace" in refused(project, DEV + "  '': x\n")


@pytest.mark.parametrize("name", ["a\x1eb", "a\u2028b", "a\x1fb", "a\x85b", "\U0007a123"])
def test_an_unknown_key_with_a_line_break_or_control_character_stays_on_one_escaped_line(
    project: Path, name: str
) -> None:
    # CI's fuzzer found it: "\x1e" in a limitRange key split the problem over two lines of the message.
    default = {"cpu": "500m", "memory": "512Mi", name: None}
    err = refused(project, with_structured("limitRange", yaml.safe_dump({"default": default})))
    escaped = name.encode("unicode_escape").decode("ascii")
    assert err.splitlines()[1:] == [
        f"  - limitRange.default.'{escaped}': unknown key (got None, expected one of cpu, memory)"
    ]


def test_fails_like_the_engine_when_an_initialised_stack_lacks_a_required_key(project: Path) -> None:
    err = refused(project, INIT + DEV)
    assert "databaseUrl: Stack 'dev' is missing configuration value 'databaseUrl'" in err


def test_a_template_stack_renders_with_its_missing_secret_named_as_a_stand_in(project: Path) -> None:
    code, out, err = rendered(project, DEV)
    assert code == 0
    # The render-only note comes first, then the stand-ins, before the first document.
    head = out.split("\napiVersion:", 1)[0]
    assert head.startswith("# Rendered offline") and "# The render could not know these config values" in head
    assert "#   databaseUrl: not set in this template" in out
    assert err.splitlines()[0] == "note: rendered with stand-ins for databaseUrl (see the top of the YAML)"
    assert err.splitlines()[1:] == [f"note: {OFFLINE}"]


def test_an_encrypted_value_is_a_named_stand_in(project: Path) -> None:
    code, out, err = rendered(project, INIT + DEV + DB + "  celery-platform:clusterDomain:\n    secure: v1:x\n")
    assert code == 0, err
    assert "#   clusterDomain: encrypted (secure:), a stand-in here" in out
    assert "v1:x" not in out and "v1:ciphertext" not in out
    # The stand-in is no secret and a valid domain: the broker host renders whole, never `svc.<secret>`.
    assert "value: redis.celery-dev.svc.cluster.local" in out and "svc.<secret>" not in out


def test_fails_like_the_engine_when_a_secret_key_is_plain_text(project: Path) -> None:
    err = refused(project, DEV + "  celery-platform:databaseUrl: postgresql://app:hunter2pw@db:5432/app\n")
    assert "databaseUrl: Stack 'dev' with configuration key 'databaseUrl' must be encrypted as it's secret" in err
    assert "hunter2pw" not in err


@pytest.mark.parametrize(
    ("key", "value", "type_name"),
    [
        ("image", {"a": 1}, "string"),
        ("longestTaskSeconds", "abc", "integer"),
        ("longestTaskSeconds", 1.5, "integer"),
        ("protectFieldEncryptionKey", "yes", "boolean"),
        ("queues", [1, 2], "array<string>"),
        ("queues", "default", "array<string>"),
        ("taskRoutes", ["app.tasks.send"], "object"),
        ("egress", ["10.0.0.0/8"], "array<object>"),
        ("pools", {"name": "main", "queues": ["default"]}, "array<object>"),
        ("rotation", 3, "object"),
    ],
)
def test_fails_like_the_engine_when_a_value_has_the_wrong_declared_type(
    project: Path, key: str, value: Any, type_name: str
) -> None:
    err = refused(project, with_key(key, value))
    assert f"  - {key}: Stack 'dev' with configuration key '{key}' must be of type '{type_name}'" in err


def test_the_render_shows_each_keepers_value_and_a_rotation_changes_it(project: Path) -> None:
    _, before, _ = rendered(project, DEV)
    _, after, _ = rendered(project, with_key("rotation", {"djangoSecretKey": 4}))
    [secret] = [d for d in yaml.safe_load_all(after) if d["kind"] == "Secret" and "annotations" in d["metadata"]]
    assert secret["metadata"]["annotations"] == {
        "celery-platform/rotation.djangoSecretKey": "4",
        "celery-platform/rotation.fieldEncryptionKey": "0",
        "celery-platform/rotation.redisPassword": "0",
    }
    assert before != after


VALID: dict[str, Any] = {
    "databaseUrl": "postgresql://app:pw@db.internal:5432/app",
    "image": "registry.example.com/app:1.0.0",
    "pools": "- {name: main, queues: [default]}",
}
CANARY = "Canary Zq7"
PLANTS = {
    "namespace": CANARY,
    "clusterDomain": f"{CANARY}.example",
    "image": f"app:{CANARY}",
    "celeryApp": CANARY,
    "queues": f'["{CANARY}"]',
    "taskRoutes": f"{{t: '{CANARY}'}}",
    "pools": f"- {{name: '{CANARY}', queues: ['{CANARY}']}}",
    "redis": f"image: '{CANARY}'",
    "beat": f"resources: {{requests: {{cpu: '{CANARY}', memory: 1Mi}}}}",
    "limitRange": f"max: {{cpu: '{CANARY}'}}",
    "quota": f"requestsCpu: '{CANARY}'",
    "initResources": f"{{requests: {{cpu: '{CANARY}'}}}}",
    "rotation": f"{{redisPassword: '{CANARY}'}}",
    "longestTaskSeconds": CANARY,
    "databaseUrl": f"postgresql://a:{CANARY}@db/app",
    "sentryDsn": f"https://{CANARY}@sentry.example/1",
    "djangoSecretKey": CANARY,
    "fieldEncryptionKey": CANARY,
    "redisPassword": CANARY,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.sets(st.sampled_from(sorted(PLANTS)), min_size=1, max_size=6), yaml_error=st.booleans())
def test_a_canary_in_any_key_marked_secret_never_reaches_a_message(keys: set[str], yaml_error: bool) -> None:
    raw = {**VALID, **{k: PLANTS[k] for k in keys}}
    if yaml_error:  # a YAML error inside a secret structured key quotes its text: it must not quote ours
        raw["pools"] = f"- {{name: '{CANARY}', queues: [{CANARY}'"
        keys = {*keys, "pools"}
    with pytest.raises(ValidationError) as caught:
        parse_stack_config(raw, secret_keys=frozenset(keys))
    text = f"{caught.value}\n{caught.value!r}\n" + "\n".join(str(p) for p in caught.value.problems)
    assert CANARY not in text
    assert CANARY.replace(" ", "") not in text


def test_fails_when_an_optional_secret_is_set_in_plain_text(tmp_path: Path) -> None:
    # The engine enforces `secret: true` only for declared keys, and the optional secrets are not
    # declared: the program itself refuses a plain-text sentryDsn, without printing it.
    dsn = "https://0123456789abcdef@o0.ingest.sentry.io/1"
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    stack = (ROOT / "Pulumi.dev.yaml").read_text() + f"  celery-platform:sentryDsn: {dsn}\n"
    (tmp_path / "Pulumi.dev.yaml").write_text(stack)
    command = [sys.executable, "-m", "celery_platform.render", "dev", "--project-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "sentryDsn: a secret set in plain text in the stack file" in result.stderr
    assert dsn not in result.stdout + result.stderr

"""Pulumi.yaml and Pulumi.<stack>.yaml read as the engine reads them, with stand-ins for what only it knows."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from celery_platform.config._yaml import YamlError, decode_utf8, load_yaml
from celery_platform.config.addresses import check_host, check_port
from celery_platform.config.migrate import old_form_problem, structured_keys
from celery_platform.config.problems import Problem, ValidationError, raise_if_any, shown
from celery_platform.config.stack import namespace_problems
from celery_platform.render.mocks import PLACEHOLDER

# Valid-looking stand-ins for secret config that is encrypted or absent: they pass validation, and
# like every secret value they print only as PLACEHOLDER.
RENDER_SECRET_STANDINS = {
    "databaseUrl": "postgresql://render:render@database.invalid:5432/render",
    "sentryDsn": "https://0123456789abcdef0123456789abcdef@sentry.invalid/1",
    "djangoSecretKey": "render-stand-in-" + "abcdefghij" * 5,
    "fieldEncryptionKey": base64.urlsafe_b64encode(bytes(32)).decode(),
    "redisPassword": "renderstandinpassword0",
}


def broker_url_standin(broker: Any) -> str:
    """Return a stand-in for an encrypted brokerUrl that agrees with the stack's broker settings."""
    try:
        external = (yaml.safe_load(broker) if isinstance(broker, str) else broker or {}).get("external") or {}
    except (yaml.YAMLError, AttributeError):
        external = {}
    scheme = "rediss" if external.get("tls") else "redis"
    host = external.get("host")
    # Only a valid host and port go into the stand-in: a refused one is reported against its own field.
    if not isinstance(host, str) or check_host("host", host):
        host = "broker.invalid"
    port = external.get("port")
    port_part = "" if port is None or check_port("port", port) else f":{port}"
    return f"{scheme}://:renderstandinpassword0@{host}{port_part}/0"


@dataclass(frozen=True)
class Project:
    """What the render needs of a Pulumi.yaml: the project name, its program folder and its config."""

    root: Path
    name: str
    main: Path
    config: Mapping[str, Any]


def _read_yaml_file(path: Path) -> Any:
    """Read a YAML file as the engine would, or raise one ValidationError naming the file, line and column."""
    try:
        return load_yaml(decode_utf8(path.read_bytes()))
    except YamlError as err:
        where = f" at {err.where}" if err.where else ""
        problem = Problem(path.name, f"not valid YAML{where}: {err.problem}", "text that is not", "UTF-8 YAML")
        raise ValidationError(path.name, [problem]) from None


def load_project(root: Path | None = None) -> Project:
    """Read ``root``/Pulumi.yaml (``root`` defaults to the current directory, as for the Pulumi CLI)."""
    root = Path.cwd() if root is None else root
    path = root / "Pulumi.yaml"
    if not path.is_file():
        raise ValidationError(
            "the project",
            [
                Problem(
                    "Pulumi.yaml", f"no Pulumi.yaml in {root.resolve()}", "no file", "--project-dir of a Pulumi project"
                )
            ],
        )
    document = _read_yaml_file(path)
    if not isinstance(document, Mapping) or not isinstance(document.get("name"), str):
        raise ValidationError(
            path.name, [Problem("name", "Pulumi.yaml is not a project file", "no name:", "a `name:` string")]
        )
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise ValidationError(path.name, [Problem("config", "is not a mapping", type(config).__name__, "a mapping")])
    return Project(root, document["name"], root / str(document.get("main") or "."), config)


@dataclass
class StackInput:
    """A stack file read as the engine reads it: PULUMI_CONFIG values, secret keys, and what is a stand-in."""

    config: dict[str, str]
    secret_keys: list[str]
    standins: dict[str, str] = field(default_factory=dict)
    """Key -> why the render could not know its value (encrypted, or not set in a template)."""


# A stack file that `pulumi stack init` has touched holds one of these: until then it is a template.
INITIALISED_MARKERS = ("encryptionsalt", "secretsprovider", "encryptedkey")
STANDIN_IMAGE = "registry.invalid/render-stand-in:0"
SECURE_FIELD_STANDIN = "render-stand-in"


def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get("secure"), str)


def _holds_secure(value: Any) -> bool:
    if _is_secure(value):
        return True
    if isinstance(value, Mapping):
        return any(_holds_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secure(v) for v in value)
    return False


def _secure_standins(value: Any) -> Any:
    """``value`` with every encrypted field (``secure:``) replaced by a stand-in string."""
    if _is_secure(value):
        return SECURE_FIELD_STANDIN
    if isinstance(value, Mapping):
        return {k: _secure_standins(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_secure_standins(v) for v in value]
    return value


def _not_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_not_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_not_finite(v) for v in value)
    return False


def _go_number(value: float) -> Any:
    """A float as Go's encoding/json writes it: integral values below 1e21 without a fraction."""
    if value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def _as_config_value(value: Any) -> Any:
    if isinstance(value, float):
        return _go_number(value)
    if isinstance(value, Mapping):
        return {str(k): _as_config_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_config_value(v) for v in value]
    return value


# What Go's json.Marshal escapes besides the characters below U+0020 (json.dumps escapes those too).
_GO_JSON_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}


def _as_config_string(value: Any) -> str:
    """Pulumi passes every config value as a string, and lists and maps as JSON (sorted, compact, like Go)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return json.dumps(_go_number(value))
    if isinstance(value, list | dict):
        text = json.dumps(_as_config_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.translate(_GO_JSON_ESCAPES)
    return str(value)


def _engine_type_ok(decl: Mapping[str, Any], value: Any) -> bool:
    """The engine's type check of a stack value against its declaration (workspace.ValidateConfigValue).

    A scalar reaches the check as its string form; a list or map as decoded JSON, whose numbers are
    floats, never strings.
    """
    kind = decl.get("type")
    if kind is None:
        return True
    content: Any = value if isinstance(value, list | dict) else _as_config_string(value)
    if isinstance(value, list | dict):
        content = json.loads(_as_config_string(value))
    return _content_ok(str(kind), decl.get("items"), content)


def _content_ok(kind: str, items: Any, content: Any) -> bool:
    if kind == "string":
        return isinstance(content, str)
    if kind == "integer":
        if isinstance(content, float):
            return content.is_integer()
        if isinstance(content, int) and not isinstance(content, bool):
            return True
        return (
            isinstance(content, str)
            and bool(re.fullmatch(r"[+-]?[0-9]+", content))
            and -(2**63) <= int(content) < 2**63
        )
    if kind == "boolean":
        return isinstance(content, bool) or content in ("true", "false")
    if kind == "object":
        return isinstance(content, dict)
    if kind == "array" and isinstance(content, list) and isinstance(items, Mapping):
        return all(_content_ok(str(items.get("type")), items.get("items"), item) for item in content)
    return False


def _standin(project: Project, short: str, stack_values: Mapping[str, Any]) -> str | None:
    """A valid-looking value for a key whose real value the render cannot know, or None."""
    if short == "brokerUrl":
        return broker_url_standin(stack_values.get(f"{project.name}:broker"))
    if short in RENDER_SECRET_STANDINS:
        return RENDER_SECRET_STANDINS[short]
    decl = project.config.get(short)
    if isinstance(decl, Mapping) and "default" in decl:
        return _as_config_string(decl["default"])
    if short == "image":
        return STANDIN_IMAGE
    if short == "pools":
        queues = stack_values.get(f"{project.name}:queues")
        if not (isinstance(queues, list) and queues and all(isinstance(q, str) for q in queues)):
            queues = ["default"]
        return json.dumps([{"name": "stand-in", "queues": queues}])
    from celery_platform.config.keys import KEYS

    defaults = {k.name: k.default for k in KEYS if isinstance(k.default, str | int | bool)}
    return _as_config_string(defaults[short]) if short in defaults else None


def read_stack(stack: str, root: Path | None = None) -> StackInput:
    """Merge Pulumi.yaml defaults and Pulumi.<stack>.yaml into PULUMI_CONFIG form, checking them as the engine does.

    The engine refuses, before the program runs, a declared key with no default that the stack lacks,
    a plain value for a ``secret: true`` key, and a value of the wrong declared type: so does this.
    """
    project = load_project(root)
    root, name = project.root, project.name
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise ValidationError(
            "the stack",
            [Problem("stack", f"no stack file {stack_file.name}", repr(stack), f"one of {available_stacks(root)}")],
        )
    document = _read_yaml_file(stack_file)
    subject = f"{stack_file.name} (stack {stack!r})"
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ValidationError(
            subject, [Problem(stack_file.name, "is not a mapping", type(document).__name__, "config:")]
        )
    stack_values = document.get("config") or {}
    if not isinstance(stack_values, Mapping):
        raise ValidationError(
            subject, [Problem("config", "is not a mapping of keys", type(stack_values).__name__, "a mapping")]
        )
    initialised = any(marker in document for marker in INITIALISED_MARKERS)
    problems: list[Problem] = []
    bad_keys = [k for k in stack_values if not isinstance(k, str)]
    for key in bad_keys:
        problems.append(Problem(repr(key), "a config key must be text", type(key).__name__, f"'{name}:<key>'"))
    stack_values = {k: v for k, v in stack_values.items() if isinstance(k, str)}
    problems += namespace_problems(stack_values, name)

    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    standins: dict[str, str] = {}
    structured = structured_keys(project.config)
    holds_secure = any(_holds_secure(v) for v in stack_values.values())
    decrypted = _decrypt_with_pulumi(project.root, stack) if holds_secure and initialised else None
    for key, decl in project.config.items():
        if isinstance(decl, Mapping) and "default" in decl:
            config[f"{name}:{key}"] = _as_config_string(decl["default"])
        if isinstance(decl, Mapping) and decl.get("secret"):
            secret_keys.add(f"{name}:{key}")
    for full_key, value in stack_values.items():
        if ":" not in full_key:
            continue
        namespace, short = full_key.split(":", 1)
        decl = project.config.get(short) if namespace == name else None
        decl = decl if isinstance(decl, Mapping) else {}
        if value is None:
            problems.append(Problem(full_key, "is null", "null", "a value (leave the key out to take its default)"))
            continue
        if namespace == name and short in structured:
            # The engine refuses a string (the old form) or a wholly encrypted value for an object key: so
            # do we, first, and with the command that converts the file.
            old_form = old_form_problem(stack, short, structured[short], value)
            if old_form is not None:
                problems.append(old_form)
                continue
            if _holds_secure(value):
                # Encrypted fields inside an object: the engine decrypts them and keeps the whole key secret.
                secret_keys.add(full_key)
                if decrypted is not None and full_key in decrypted:
                    config[full_key] = decrypted[full_key]
                else:
                    config[full_key] = _as_config_string(_secure_standins(value))
                    standins[short] = "holds encrypted fields (secure:), stand-ins here"
                continue
        if _holds_secure(value):
            secret_key = short in RENDER_SECRET_STANDINS or short == "brokerUrl"
            if secret_key and namespace == name and decrypted is not None and full_key in decrypted:
                # Checked with its real value, which stays secret: it prints as <secret>, messages show a shape.
                secret_keys.add(full_key)
                config[full_key] = decrypted[full_key]
                continue
            standin = _standin(project, short, stack_values) if namespace == name else PLACEHOLDER
            if secret_key or namespace != name:
                secret_keys.add(full_key)
            # Otherwise the stand-in is no secret: it renders as itself (a valid host, name or image),
            # and the header says it is a stand-in. `pulumi preview` sees and keeps secret the real value.
            if standin is None:
                problems.append(
                    Problem(full_key, "is encrypted and the render has no stand-in for it", "secure:", "pulumi preview")
                )
                continue
            standins[short] = "encrypted (secure:), a stand-in here"
            config[full_key] = standin
            continue
        if _not_finite(value):
            problems.append(Problem(full_key, "is not a finite number", "an infinite or NaN value", "a number"))
            continue
        if decl.get("secret"):
            problems.append(
                Problem(
                    short,
                    f"Stack '{stack}' with configuration key '{short}' must be encrypted as it's secret",
                    "a plain-text value, not shown",
                    f"pulumi config set --secret {short} ...",
                )
            )
            continue
        if not _engine_type_ok(decl, value):
            problems.append(
                Problem(
                    short,
                    f"Stack '{stack}' with configuration key '{short}' must be of type '{_type_name(decl)}'",
                    "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else shown(value),
                    f"a value of type '{_type_name(decl)}'",
                )
            )
            continue
        config[full_key] = _as_config_string(value)
    for short, decl in project.config.items():
        full_key = f"{name}:{short}"
        if full_key in config or full_key in stack_values or not isinstance(decl, Mapping):
            continue  # set, or refused above: not missing too
        if "default" in decl or "value" in decl:
            continue
        if not initialised and short in RENDER_SECRET_STANDINS:
            # A template no one has run `pulumi stack init` on: render anyway, and say so.
            config[full_key] = RENDER_SECRET_STANDINS[short]
            standins[short] = f"not set in this template (pulumi config set --secret {short} ...), a stand-in here"
            continue
        problems.append(
            Problem(
                short,
                f"Stack '{stack}' is missing configuration value '{short}'",
                "nothing",
                f"pulumi config set{' --secret' if decl.get('secret') else ''} {short} ...",
            )
        )
    raise_if_any(subject, problems)
    return StackInput(config, sorted(secret_keys), standins)


def _decrypt_with_pulumi(root: Path, stack: str) -> dict[str, str] | None:
    """The stack's config values, secrets decrypted, from the Pulumi CLI; None when it cannot say.

    Only with a ``pulumi`` on PATH that is logged in to the stack's backend and can decrypt (the
    passphrase in the environment, or a cloud secrets provider). Then an encrypted secret is checked
    with its real value, as ``pulumi preview`` checks it, instead of with a stand-in.
    """
    if shutil.which("pulumi") is None:
        return None
    try:
        result = subprocess.run(
            ["pulumi", "config", "--stack", stack, "--show-secrets", "--json", "--cwd", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
        )
        values = json.loads(result.stdout) if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return None
    if not isinstance(values, dict):
        return None
    return {k: v["value"] for k, v in values.items() if isinstance(v, dict) and isinstance(v.get("value"), str)}


def _type_name(decl: Mapping[str, Any]) -> str:
    """The type as the engine names it in its refusal (workspace.InferFullTypeName): ``array<object>``."""
    kind = str(decl.get("type"))
    items = decl.get("items")
    if isinstance(items, Mapping):
        return f"array<{_type_name(items)}>"
    return kind


def stack_config(stack: str, root: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """Merge Pulumi.yaml defaults and Pulumi.<stack>.yaml into PULUMI_CONFIG form, with the secret keys."""
    read = read_stack(stack, root)
    return read.config, read.secret_keys


def available_stacks(root: Path | None = None) -> list[str]:
    """Return the stacks that have a Pulumi.<stack>.yaml file."""
    root = Path.cwd() if root is None else root
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))

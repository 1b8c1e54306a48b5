"""Mutate the real stack files, render each through the CLI entry point, and judge every outcome.

One case is a stack file (bytes). The render runs in-process (``celery_platform.render.main``), as
``python -m celery_platform.render`` would, with a time bound. Oracles:

- the exit code is 0 or 2, never a traceback (any other exception) and never over the time bound;
- exit 2 prints nothing on stdout and one error whose every problem line reads ``field: problem (got X,
  expected Y)``;
- exit 0 prints YAML that the Kubernetes 1.37 schemas accept (kubernetes-validate, strict), whose names
  are DNS labels, quantities in the API server's grammar, counts within int32;
- no canary planted in a secret-marked or misspelled key ever appears in stdout or stderr.

``python -m tests.fuzz.program --cases N`` runs N cases and prints the cases per outcome (``make fuzz``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from tests.operator_crds import GROUP, crds_dir, load_crds, schemas, strict_problems

ROOT = Path(__file__).resolve().parents[2]
CANARY = "Canary Zq7"  # the space makes it invalid wherever it lands, so it must show up if anything leaks
SECONDS = 20.0
PROBLEM_LINE = re.compile(r"  - \S.*: .+ \(got .*, expected .*\)")
QUANTITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?")
DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
KEYS = [
    "namespace",
    "clusterDomain",
    "rotation",
    "protectFieldEncryptionKey",
    "limitRange",
    "quota",
    "image",
    "celeryApp",
    "longestTaskSeconds",
    "heartbeatMaxAgeSeconds",
    "queues",
    "taskRoutes",
    "redis",
    "pools",
    "beat",
    "initResources",
    "databaseUrl",
    "sentryDsn",
    "djangoSecretKey",
    "fieldEncryptionKey",
    "redisPassword",
]
BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)
NASTY: list[Any] = [
    None,
    "",
    "\n",
    "celery-dev\n",
    "main\n",
    "cluster.local@evil.example",
    "cluster.local/x",
    "\u0661\u0660\u0660m",
    "2_0",
    "1K",
    "1e3Mi",
    "100m\n",
    "\t1",
    "1e999",
    3000000000,
    1e20,
    1e23,
    -1,
    0,
    10**30,
    "a,b",
    ",",
    "ghcr.io/acme/app:",
    "ghcr.io/acme/app@",
    "ghcr.io//app:1",
    "ghcr.io/acme/app:1 2",
    "x" * 300,
    [],
    {},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    BOMB,
    "[" * 200,
    "a: [1, 2\n",
    "{a: 1, a: 2}",
    ".inf",
    True,
    "yes",
    "0.5",
    "0",
    "- name: main\n  queues: [default]\n  replicas: 0\n",
    "- name: Main\n  queues: ['a,b']\n",
    "maxLimitRequestRatio: {cpu: 1000}",
    "maxLimitRequestRatio: {cpu: NaN}",
    "storageSize: 1e3Mi\npersistent: false",
    "storageClass: Bad_Class\npersistent: true",
    "requestsMemory: 99999999999999999999999Mi",
    "{djangoSecretKey: 1, fieldEncryptionKey: 2}",
    "{redisPassword: -1}",
    "postgresql://u:p@db.example:5432/app",
    "https://k@sentry.example/1",
    "abcdefghijklmnop\n",
]


@dataclass
class Result:
    """One case: the outcome class, what it printed, and how long it took."""

    outcome: str
    code: int | None
    stdout: str
    stderr: str
    seconds: float
    detail: str = ""


def _values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.sampled_from(NASTY),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        st.text(max_size=20),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=8,
    )


@st.composite
def stack_files(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A mutated copy of Pulumi.dev.yaml or Pulumi.prod.yaml (bytes) and the canaries planted in it."""
    base = draw(st.sampled_from(["dev", "prod"]))
    document = yaml.safe_load((ROOT / f"Pulumi.{base}.yaml").read_text())
    config: dict[str, Any] = document["config"]
    canaries: list[str] = []
    # 0 mutations renders the committed stack: every run also exercises the rendered-YAML oracles.
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        kind = draw(st.sampled_from(["set", "delete", "secure", "misspell", "namespace", "nested", "init"]))
        key = "celery-platform:" + draw(st.sampled_from(KEYS))
        if kind == "set":
            config[key] = draw(_values())
        elif kind == "delete":
            config.pop(key, None)
        elif kind == "secure":
            config[key] = {"secure": "v1:" + CANARY.replace(" ", "")}
        elif kind == "misspell":
            secret = f"postgresql://app:{CANARY.replace(' ', '')}pw@db:5432/app"
            canaries.append(CANARY.replace(" ", "") + "pw")
            config[draw(st.sampled_from(["celery-platform:databaseURL", "celery-platfrom:databaseUrl", ""]))] = secret
        elif kind == "namespace":
            config[key.replace("celery-platform", draw(st.sampled_from(["celery-platfrom", "k8s", ""])))] = "x"
        elif kind == "nested":
            structured = draw(st.sampled_from(["limitRange", "quota", "redis", "pools", "beat", "initResources"]))
            full = f"celery-platform:{structured}"
            current = config.get(full)
            tree = current
            if isinstance(tree, list) and tree:
                tree = tree[0]
            if isinstance(tree, dict) and tree:
                tree[draw(st.sampled_from(sorted(tree)))] = draw(_values())
                config[full] = tree if structured != "pools" else [tree]
        else:
            document["encryptionsalt"] = "v1:abc"
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()
    tail = draw(st.sampled_from([b"", b"", b"", b"\xff\xfe", b"\n  : x\n", b"\nconfig: [1]\n", b"\t"]))
    return text + tail, canaries


def run_case(stack_bytes: bytes, root: Path) -> Result:
    """Render ``stack_bytes`` as stack ``fuzz`` of a copy of the project at ``root``."""
    from celery_platform import render

    (root / "Pulumi.fuzz.yaml").write_bytes(stack_bytes)
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    code: int | None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = render.main(["fuzz", "--project-dir", str(root)])
    except BaseException as exc:
        return Result("traceback", None, out.getvalue(), err.getvalue(), time.monotonic() - start, repr(exc)[:300])
    return Result("", code, out.getvalue(), err.getvalue(), time.monotonic() - start)


def judge(result: Result, canaries: list[str]) -> Result:
    """Classify a case; any outcome but ``rendered`` or ``refused`` is a failure of the program."""
    if result.outcome:
        return result
    printed = result.stdout + result.stderr
    for canary in [CANARY, CANARY.replace(" ", ""), *canaries]:
        if canary in printed:
            return _as(result, "secret printed", canary)
    if result.seconds > SECONDS:
        return _as(result, "timed out", f"{result.seconds:.1f}s")
    if result.code == 2:
        lines = result.stderr.splitlines()
        if result.stdout or not lines or not lines[0].startswith("error: "):
            return _as(result, "unclear refusal", result.stderr[:300])
        bad = [line for line in lines[1:] if not PROBLEM_LINE.fullmatch(line)]
        return _as(result, "unclear refusal", bad[0]) if bad else _as(result, "refused", "")
    if result.code != 0:
        return _as(result, "unclear refusal", f"exit {result.code}")
    problem = yaml_problem(result.stdout)
    return _as(result, "invalid yaml accepted", problem) if problem else _as(result, "rendered", "")


def _as(result: Result, outcome: str, detail: str) -> Result:
    result.outcome, result.detail = outcome, detail
    return result


@functools.cache
def _operator_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    return schemas(load_crds(crds_dir()))


def yaml_problem(text: str) -> str:
    """Return why the rendered YAML would not be accepted as is, or ``""``."""
    import kubernetes_validate  # type: ignore[import-untyped,unused-ignore]

    for doc in yaml.safe_load_all(text):
        meta = doc.get("metadata", {})
        for name in (meta.get("name", ""), meta.get("namespace", "default")):
            if not DNS_LABEL.fullmatch(str(name)):
                return f"{doc['kind']} name {name!r}"
        if str(doc.get("apiVersion", "")).startswith(f"{GROUP}/"):
            # The Prometheus Operator's kinds: their CRDs are the schema, checked as strictly.
            schema = _operator_schemas().get((doc["apiVersion"], doc["kind"]))
            found = strict_problems(doc, schema) if schema else [f"no CRD serves {doc['apiVersion']}"]
            if found:
                return f"{doc['kind']} {meta.get('name')}: {found[0][:200]}"
        else:
            try:
                kubernetes_validate.validate(doc, "1.37", strict=True)
            except kubernetes_validate.ValidationError as err:
                return f"{doc['kind']} {meta.get('name')}: {str(err)[:200]}"
        for quantity in _quantities(doc):
            if not QUANTITY.fullmatch(quantity):
                return f"{doc['kind']} quantity {quantity!r}"
        for number in _numbers(doc):
            if abs(number) > 2**31 - 1 and not isinstance(number, bool):
                return f"{doc['kind']} number {number}"
    return ""


def _walk(value: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _walk(v, str(k))]
    if isinstance(value, list):
        return [pair for v in value for pair in _walk(v, key)]
    return [(key, value)]


def _quantities(doc: Any) -> list[str]:
    keys = {"cpu", "memory", "storage", "sizeLimit", "requests.cpu", "limits.cpu", "requests.memory"}
    return [str(v) for k, v in _walk(doc) if k in keys]


def _numbers(doc: Any) -> list[int]:
    return [v for k, v in _walk(doc) if isinstance(v, int) and k not in ("terminationGracePeriodSeconds",)]


def project_copy(into: Path) -> Path:
    """A project folder with the real Pulumi.yaml and program, for fuzz stack files."""
    (into / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    if not (into / "infra").exists():
        (into / "infra").symlink_to(ROOT / "infra")
    return into


def fuzz(cases: int, record: Callable[[Result, bytes], None], seed: int | None = None) -> None:
    """Run ``cases`` generated cases, handing each judged result to ``record``."""
    with tempfile.TemporaryDirectory() as tmp:
        root = project_copy(Path(tmp))

        @settings(
            max_examples=cases,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=stack_files())
        def one(case: tuple[bytes, list[str]]) -> None:
            stack_bytes, canaries = case
            record(judge(run_case(stack_bytes, root), canaries), stack_bytes)

        (one if seed is None else hypothesis_seed(seed)(one))()


def main(argv: list[str] | None = None) -> int:
    """``make fuzz``: run many cases and print the cases per outcome; exit 1 if any case failed an oracle."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="replay a run: its seed is printed first")
    options = parser.parse_args(argv)
    seed = random.randrange(2**32) if options.seed is None else options.seed
    print(f"seed {seed} (replay: python -m tests.fuzz.program --cases {options.cases} --seed {seed})")
    counts: Counter[str] = Counter()
    failures: list[tuple[Result, bytes]] = []
    slowest = 0.0

    def record(result: Result, stack_bytes: bytes) -> None:
        nonlocal slowest
        counts[result.outcome] += 1
        slowest = max(slowest, result.seconds)
        if result.outcome not in ("rendered", "refused"):
            failures.append((result, stack_bytes))

    start = time.monotonic()
    fuzz(options.cases, record, seed)
    print(f"{sum(counts.values())} cases in {time.monotonic() - start:.0f}s (slowest {slowest:.1f}s)")
    for outcome, count in counts.most_common():
        print(f"  {outcome}: {count}")
    for result, stack_bytes in failures[:5]:
        print(f"--- {result.outcome}: {result.detail}\n{stack_bytes[:2000]!r}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

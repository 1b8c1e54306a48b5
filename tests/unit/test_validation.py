"""The shared rules: quantities, secrets, DSNs and URLs, each accepted and refused as documented."""

from __future__ import annotations

import base64
import decimal
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from celery_platform.builders.secret_keys import fernet_key_from_base64
from celery_platform.config import quantities
from celery_platform.config.quantities import QuantityError, format_cpu, format_memory, parse_cpu, parse_memory
from celery_platform.config.secret_values import (
    check_database_url,
    check_django_secret_key,
    check_fernet_key,
    check_redis_password,
    check_sentry_dsn,
)
from celery_platform.config.validation import check_cpu, check_memory, check_ratio

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_and_memory_parse_like_the_api_server() -> None:
    assert parse_cpu("400m") == parse_cpu("0.4")
    assert parse_memory("1Gi") == 1024**3
    assert format_cpu(parse_cpu("1.5")) == "1500m"
    assert format_memory(parse_memory("1536Mi")) == "1536Mi"


def test_quantities_are_parsed_by_the_kubernetes_clients_own_function() -> None:
    from kubernetes.utils import quantity

    ours = quantities.parse_quantity
    assert Path(ours.__code__.co_filename).resolve() == Path(quantity.__file__).resolve()
    assert ours.__code__.co_code == quantity.parse_quantity.__code__.co_code


def test_a_render_never_imports_the_kubernetes_rest_client() -> None:
    # Its package __init__ imports ~870 modules for a parser of 40 lines: seconds per start, 22 MB of bytecode.
    script = (
        "import sys; from celery_platform.render import render_documents; render_documents('dev'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_quantity_parses_the_same_whoever_asks_first_and_however_often() -> None:
    # Parses are cached: the first caller's decimal context must not stick, nor a refusal be forgotten.
    with decimal.localcontext(decimal.Context(prec=2, rounding=decimal.ROUND_DOWN)):
        assert parse_memory("1537Mi") == 1537 * 2**20
    assert parse_memory("1537Mi") == 1537 * 2**20
    for _ in range(2):
        with pytest.raises(QuantityError):
            parse_cpu("400mm")
        with pytest.raises(QuantityError):
            parse_cpu(True)
    assert parse_cpu(1) == 1


@pytest.mark.parametrize("value", ["400mm", "abc", "", "1.5.5", "--1", "1e+25", "1e+40"])
def test_fails_when_a_quantity_is_malformed(value: str) -> None:
    [problem] = check_cpu("pools[0].cpu", value)
    assert problem.field == "pools[0].cpu"
    assert repr(value) in str(problem)


def test_fails_when_memory_is_a_fraction_of_a_byte() -> None:
    [problem] = check_memory("memory", "512m")
    assert "fraction of a byte" in problem.problem


@given(st.integers(min_value=1, max_value=64_000))
def test_any_whole_millicore_count_round_trips(millis: int) -> None:
    assert check_cpu("cpu", f"{millis}m") == []
    assert format_cpu(parse_cpu(f"{millis}m")) == f"{millis}m"


@given(st.decimals(min_value=-10, max_value=10, allow_nan=False, places=2))
def test_a_ratio_is_valid_exactly_when_it_is_at_least_one(ratio: object) -> None:
    from decimal import Decimal

    assert isinstance(ratio, Decimal)
    assert (check_ratio("r", ratio) == []) == (ratio >= 1)


def test_a_fernet_key_made_from_real_random_bytes_is_accepted_by_cryptography() -> None:
    for _ in range(200):
        standard = base64.b64encode(os.urandom(32)).decode()
        key = fernet_key_from_base64(standard)
        token = Fernet(key.encode()).encrypt(b"field")
        assert Fernet(key.encode()).decrypt(token) == b"field"
        assert check_fernet_key("fieldEncryptionKey", key) == []


def test_fails_when_a_standard_base64_key_is_used_as_a_fernet_key_unconverted() -> None:
    # 0xfb 0xff ... encodes to '+' and '/' in standard base64; Fernet rejects those.
    standard = base64.b64encode(bytes([0xFB, 0xFF] * 16)).decode()
    assert "+" in standard or "/" in standard
    assert check_fernet_key("fieldEncryptionKey", standard) != []
    assert check_fernet_key("fieldEncryptionKey", fernet_key_from_base64(standard)) == []


@pytest.mark.parametrize("value", ["short", base64.urlsafe_b64encode(bytes(16)).decode(), "!" * 44])
def test_fails_when_a_fernet_key_does_not_decode_to_32_bytes(value: str) -> None:
    [problem] = check_fernet_key("fieldEncryptionKey", value)
    assert problem.field == "fieldEncryptionKey"
    assert value not in str(problem)


def test_a_django_key_needs_fifty_characters_and_five_unique() -> None:
    assert check_django_secret_key("k", "abcde" * 10) == []
    assert check_django_secret_key("k", "abcd" * 20) != []
    assert check_django_secret_key("k", "abcde" * 9) != []


def test_fails_when_a_django_key_is_the_insecure_development_key() -> None:
    key = "django-insecure-" + "abcdefghijklmnopqrstuvwxyz0123456789"
    problems = check_django_secret_key("djangoSecretKey", key)
    assert [p.problem for p in problems] == ["is Django's development key"]
    assert key not in str(problems[0])


@pytest.mark.parametrize(
    "dsn",
    ["https://abc123@o1.ingest.sentry.io/42", "https://k@sentry.example.com:9000/prefix/7"],
)
def test_a_well_formed_sentry_dsn_is_accepted(dsn: str) -> None:
    assert check_sentry_dsn("sentryDsn", dsn) == []


@pytest.mark.parametrize(
    "dsn",
    [
        "http://abc@o1.ingest.sentry.io/42",
        "https://o1.ingest.sentry.io/42",
        "https://abc@o1.ingest.sentry.io/",
        "https://abc@o1.ingest.sentry.io/project",
        "not a dsn",
        "https://abc@[::1/1",
    ],
)
def test_fails_when_a_sentry_dsn_is_malformed(dsn: str) -> None:
    [problem] = check_sentry_dsn("sentryDsn", dsn)
    assert problem.field == "sentryDsn"
    assert "https://KEY@HOST/PROJECT" in problem.expected
    assert dsn not in str(problem), "a secret must never be echoed"


def test_a_postgres_url_is_accepted_and_others_are_not() -> None:
    assert check_database_url("databaseUrl", "postgresql+psycopg://u:p@db:5432/app") == []
    assert check_database_url("databaseUrl", "postgres://u:p@db/app") == []
    [problem] = check_database_url("databaseUrl", "mysql://u:p@db/app")
    assert problem.problem == "not a PostgreSQL URL"
    assert "u:p" not in str(problem)
    assert check_database_url("databaseUrl", "postgresql://u:p@db:5432/") != []


def test_fails_when_a_redis_password_would_need_url_encoding() -> None:
    assert check_redis_password("redisPassword", "A" * 16) == []
    [problem] = check_redis_password("redisPassword", "pass@word/with:colons")
    assert "URL-safe" in problem.problem
    with pytest.raises(QuantityError):
        parse_memory("1.5.5Gi")


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("redis:7.2.7", True),
        ("registry.example.com:5000/team/app:1.0.3", True),
        ("ghcr.io/acme/app@sha256:" + "a" * 64, True),
        ("redis", False),
        ("redis:latest", False),
        ("registry.example.com:5000/team/app", False),
    ],
)
def test_an_image_is_pinned_only_by_a_real_tag_or_a_digest(image: str, pinned: bool) -> None:
    from celery_platform.config.validation import check_image_pinned

    problems = check_image_pinned("image", image)
    assert (problems == []) == pinned
    if problems:
        assert (
            str(problems[0])
            == f"image: is not pinned (got {image!r}, expected an image with a tag (not latest) or a digest)"
        )


def test_fails_when_a_pool_names_its_queues_as_one_bare_string() -> None:
    from celery_platform.config.specs import PoolSpec

    problems = PoolSpec(name="main", queues="default").validate("pools[0]")  # type: ignore[arg-type]
    assert [str(p) for p in problems] == [
        "pools[0].queues: is a bare string, not a list (got 'default', expected a list such as ('default',))"
    ]


def test_fails_when_egress_cidrs_is_one_bare_string() -> None:
    from celery_platform.resources.namespace import NamespaceArgs

    problems = NamespaceArgs(name="ns", egress_cidrs="10.0.0.0/8").validate()  # type: ignore[arg-type]
    assert any(p.field == "egressCidrs" and "bare string" in p.problem for p in problems)

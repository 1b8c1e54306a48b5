"""PlatformSecrets under mocks: generated keys, overrides, rotation, and secrecy of every output."""

from __future__ import annotations

import pulumi
import pytest

from celery_platform.config.problems import ValidationError
from celery_platform.config.rotation import Rotation
from celery_platform.config.secret_values import DJANGO_MIN_LENGTH
from celery_platform.render.mocks import RenderMocks
from celery_platform.resources.secrets import DJANGO_KEY_LENGTH, PlatformSecrets, SecretsArgs
from tests.conftest import is_secret, objects_of, resolve, run

DB = "postgresql://app:pw@db:5432/app"


def make(**overrides: object) -> PlatformSecrets:
    args = {"namespace": "team-a", "database_url": pulumi.Output.secret(DB), **overrides}
    return run(lambda: PlatformSecrets("keys", SecretsArgs(**args)))  # type: ignore[arg-type]


def randoms(mocks: RenderMocks, kind: str) -> dict[str, dict[str, object]]:
    return {name: inputs for typ, name, inputs in mocks.resources if typ.endswith(kind)}


def test_every_output_that_carries_a_key_is_secret(mocks: RenderMocks) -> None:
    secrets = make(sentry_dsn=pulumi.Output.secret("https://k@o1.sentry.io/1"))
    for output in (
        secrets.django_secret_key,
        secrets.field_encryption_key,
        secrets.redis_password,
        secrets.database_url,
        secrets.sentry_dsn,
    ):
        assert output is not None and is_secret(output)
    assert not is_secret(secrets.secret_name)


def test_the_django_key_generator_follows_djangos_rules(mocks: RenderMocks) -> None:
    make()
    [django] = [v for k, v in randoms(mocks, "RandomPassword").items() if "django" in k]
    assert django["length"] == DJANGO_KEY_LENGTH >= DJANGO_MIN_LENGTH
    assert django["special"] is True
    # Four character classes with two of each guarantee at least 5 unique characters.
    assert sum(int(django[f"min{c}"]) > 0 for c in ("Lower", "Upper", "Numeric", "Special")) == 4  # type: ignore[arg-type]
    assert django["minLower"] >= 2  # type: ignore[operator]


def test_the_fernet_key_comes_from_32_random_bytes(mocks: RenderMocks) -> None:
    secrets = make()
    [raw] = randoms(mocks, "RandomBytes").values()
    assert raw["length"] == 32
    key = resolve(secrets.field_encryption_key)
    assert key is not None and "+" not in key and "/" not in key and len(key) == 44


def test_the_redis_password_is_url_safe(mocks: RenderMocks) -> None:
    make()
    [password] = [v for k, v in randoms(mocks, "RandomPassword").items() if "redis" in k]
    assert password["special"] is False and password["length"] >= 16  # type: ignore[operator]


def test_each_generated_key_has_its_own_keeper(mocks: RenderMocks) -> None:
    make(rotation=Rotation(django_secret_key=3, redis_password=5))
    generated = {**randoms(mocks, "RandomPassword"), **randoms(mocks, "RandomBytes")}
    keepers = {name: inputs["keepers"] for name, inputs in generated.items()}
    assert keepers == {
        "keys-django-secret-key": {"rotation": "3"},
        "keys-redis-password": {"rotation": "5"},
        "keys-field-encryption-key": {"rotation": "0"},
    }


def test_the_keepers_of_a_stack_that_never_rotated_are_unchanged(mocks: RenderMocks) -> None:
    # Before per-key rotation every keeper was {"rotation": "0"}: a different map would replace,
    # and so regenerate, every key of every existing stack on upgrade.
    make()
    generated = {**randoms(mocks, "RandomPassword"), **randoms(mocks, "RandomBytes")}
    assert [inputs["keepers"] for inputs in generated.values()] == [{"rotation": "0"}] * 3


def test_fails_when_rotation_is_one_number_for_every_key(mocks: RenderMocks) -> None:
    with pytest.raises(ValidationError) as caught:
        make(rotation=3)
    [problem] = caught.value.problems
    assert problem.field == "rotation"
    assert "FIELD_ENCRYPTION_KEY" in problem.problem and "rotation.fieldEncryptionKey" in problem.expected
    assert mocks.resources == []


def test_the_field_encryption_key_is_protected_and_the_others_are_not(mocks: RenderMocks) -> None:
    secrets = make()
    protected = {r._name: bool(r._protect) for r in _children(secrets)}
    assert protected == {
        "keys-django-secret-key": False,
        "keys-field-encryption-key": True,
        "keys-redis-password": False,
    }


def test_the_field_encryption_key_protection_can_be_turned_off_for_throwaway_stacks(mocks: RenderMocks) -> None:
    secrets = make(protect_field_encryption_key=False)
    assert not any(r._protect for r in _children(secrets))


def _children(secrets: PlatformSecrets) -> list[pulumi.CustomResource]:
    return secrets.generators


def test_the_secret_shows_each_generated_keys_keeper_and_no_value(mocks: RenderMocks) -> None:
    make(rotation=Rotation(field_encryption_key=2), django_secret_key="Vq3" + "x9Lm2Pz7" * 7)
    [secret] = objects_of(mocks, "Secret")
    assert secret["metadata"]["annotations"] == {
        "celery-platform/rotation.fieldEncryptionKey": "2",
        "celery-platform/rotation.redisPassword": "0",
    }


def test_one_kubernetes_secret_holds_every_key_in_string_data(mocks: RenderMocks) -> None:
    make()
    [secret] = objects_of(mocks, "Secret")
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["namespace"] == "team-a"
    data = secret["stringData"]["value"]
    assert sorted(data) == ["DATABASE_URL", "FIELD_ENCRYPTION_KEY", "REDIS_PASSWORD", "SECRET_KEY"]


def test_a_value_from_secret_config_replaces_the_generated_one(mocks: RenderMocks) -> None:
    key = "Vq3" + "x9Lm2Pz7" * 7
    secrets = make(django_secret_key=key)
    assert not [k for k in randoms(mocks, "RandomPassword") if "django" in k]
    assert resolve(secrets.django_secret_key) == key
    assert is_secret(secrets.django_secret_key)


def test_fails_when_a_given_fernet_key_does_not_decode_to_32_bytes(mocks: RenderMocks) -> None:
    with pytest.raises(ValidationError) as caught:
        make(field_encryption_key="c2hvcnQ=", sentry_dsn="http://bad", rotation=Rotation(redis_password=-1))
    assert [p.field for p in caught.value.problems] == ["rotation.redisPassword", "sentryDsn", "fieldEncryptionKey"]
    assert mocks.resources == [], "nothing is registered when the arguments are invalid"

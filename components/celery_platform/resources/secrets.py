"""PlatformSecrets: generated keys (pulumi-random) and secret config, in one Kubernetes Secret."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from celery_platform.builders.labels import standard_labels
from celery_platform.builders.secret_keys import (
    DATABASE_URL,
    FIELD_ENCRYPTION_KEY,
    REDIS_PASSWORD,
    SECRET_KEY,
    SENTINEL_PASSWORD,
    SENTRY_DSN,
    fernet_key_from_base64,
)
from celery_platform.config.problems import Problem, ValidationError, raise_if_any, validated_by_parent
from celery_platform.config.rotation import ROTATION_ANNOTATION, Rotation, rotation_problems
from celery_platform.config.secret_values import (
    check_database_url,
    check_django_secret_key,
    check_fernet_key,
    check_redis_password,
    check_sentry_dsn,
)

DJANGO_KEY_LENGTH = 64
# Django's own get_random_secret_key() alphabet, minus characters that need quoting in a shell or .env.
DJANGO_KEY_SPECIALS = "!@#%^&*(-_=+)"
REDIS_PASSWORD_LENGTH = 32
FERNET_KEY_BYTES = 32


@dataclass(frozen=True, kw_only=True)
class SecretsArgs:
    """Arguments of PlatformSecrets. Values given here replace the generated ones and are validated."""

    namespace: pulumi.Input[str]
    """Namespace of the Kubernetes Secret. Required."""
    database_url: pulumi.Input[str]
    """PostgreSQL URL for the app (``DATABASE_URL``), from secret config. Required."""
    rotation: Rotation | int = dataclasses.field(default_factory=Rotation)
    """One keeper per generated key (``Rotation``); a plain ``0`` means all keepers at 0, any other
    plain number is refused (it used to regenerate every key at once). Default: ``Rotation()``."""
    protect_field_encryption_key: bool = True
    """Mark the generated FIELD_ENCRYPTION_KEY ``protect``: the engine then refuses to replace or
    delete it (a rename, a keeper bump, a destroy) until ``pulumi state unprotect``. Default: ``True``."""
    sentry_dsn: pulumi.Input[str] | None = None
    """Sentry DSN ``https://KEY@HOST/PROJECT``; no ``SENTRY_DSN`` key when unset. Default: unset."""
    django_secret_key: pulumi.Input[str] | None = None
    """Django ``SECRET_KEY``; generated (64 characters) when unset. Default: generated."""
    field_encryption_key: pulumi.Input[str] | None = None
    """Fernet key ``FIELD_ENCRYPTION_KEY``; generated from 32 random bytes when unset. Default: generated."""
    redis_password: pulumi.Input[str] | None = None
    """URL-safe Redis password; generated (32 letters and digits) when unset. Default: generated."""
    holds_redis_password: bool = True
    """Keep a Redis password (``REDIS_PASSWORD``) in the Secret, for our Redis. False with an external
    broker, whose password is in its URL: then nothing is generated, ``redis_password`` and its keeper
    are not read, and setting or rotating them changes no object. Default: ``True``."""
    holds_sentinel_password: bool = False
    """Generate the Sentinels' password (``SENTINEL_PASSWORD``), for ``broker.type: sentinel``; its keeper
    is ``rotation.sentinelPassword``. Default: ``False``."""

    def validate(self) -> list[Problem]:
        """Return every problem with the plain values given (Outputs are checked when they resolve)."""
        problems = rotation_problems("rotation", self.rotation)
        for field, value, check in self._checked_values():
            if isinstance(value, str):
                problems += check(field, value)
        return problems

    def rotations(self) -> Rotation:
        """Return the keepers as a Rotation (a plain ``0`` is every keeper at 0)."""
        return self.rotation if isinstance(self.rotation, Rotation) else Rotation()

    def _checked_values(
        self,
    ) -> list[tuple[str, pulumi.Input[str] | None, Callable[[str, str], list[Problem]]]]:
        return [
            ("databaseUrl", self.database_url, check_database_url),
            ("sentryDsn", self.sentry_dsn, check_sentry_dsn),
            ("djangoSecretKey", self.django_secret_key, check_django_secret_key),
            ("fieldEncryptionKey", self.field_encryption_key, check_fernet_key),
            ("redisPassword", self.redis_password, check_redis_password),
        ]


def _checked(
    subject: str, field: str, value: pulumi.Input[str], check: Callable[[str, str], list[Problem]]
) -> pulumi.Output[str]:
    """Return ``value`` as a secret Output that fails the deployment if it breaks ``check``."""

    def verify(text: str) -> str:
        raise_if_any(subject, check(field, text))
        return text

    return pulumi.Output.secret(pulumi.Output.from_input(value).apply(verify))


class PlatformSecrets(pulumi.ComponentResource):
    """Generate the platform's keys with pulumi-random and keep them in one Kubernetes Secret.

    Every key is a secret Output. Each generated key has its own keeper in ``Rotation``, so bumping
    one regenerates that key only; a value given in ``SecretsArgs`` replaces its generated key. The
    Fernet key is ``protect``-ed: replacing it loses every encrypted column, so the engine must refuse
    it unless someone unprotects it on purpose.
    """

    secret_name: pulumi.Output[str]
    django_secret_key: pulumi.Output[str]
    field_encryption_key: pulumi.Output[str]
    redis_password: pulumi.Output[str] | None
    """None when the Secret holds no Redis password (an external broker)."""
    database_url: pulumi.Output[str]
    sentry_dsn: pulumi.Output[str] | None

    def __init__(self, resource_name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        subject = f"PlatformSecrets {resource_name!r}"
        # Validate before registering anything, the component included: nothing half applied.
        if not validated_by_parent(opts):
            raise_if_any(subject, args.validate())
        super().__init__("celery-platform:index:PlatformSecrets", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        rotation = args.rotations()
        # The keeper's key stays "rotation", as before per-key rotation: a changed keeper map would
        # replace, and so regenerate, every key of an existing stack.
        keepers = {name: {"rotation": str(value)} for name, value in rotation.keepers().items()}
        generated: list[str] = []
        self.generators: list[pulumi.CustomResource] = []

        if args.django_secret_key is None:
            django = random.RandomPassword(
                f"{resource_name}-django-secret-key",
                length=DJANGO_KEY_LENGTH,
                special=True,
                override_special=DJANGO_KEY_SPECIALS,
                min_lower=2,
                min_upper=2,
                min_numeric=2,
                min_special=2,
                keepers=keepers["djangoSecretKey"],
                opts=child,
            )
            generated.append("djangoSecretKey")
            self.generators.append(django)
            django_value: pulumi.Input[str] = django.result
        else:
            django_value = args.django_secret_key
        # Generated keys are checked too: a rule broken by the generator must stop the deployment.
        self.django_secret_key = _checked(subject, "djangoSecretKey", django_value, check_django_secret_key)

        if args.field_encryption_key is None:
            # protect, not retain_on_delete: RandomBytes exists only in the Pulumi state, so "retaining"
            # it would keep nothing; protect makes the engine refuse the replacement itself.
            raw = random.RandomBytes(
                f"{resource_name}-field-encryption-key",
                length=FERNET_KEY_BYTES,
                keepers=keepers["fieldEncryptionKey"],
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect_field_encryption_key),
            )
            generated.append("fieldEncryptionKey")
            self.generators.append(raw)
            fernet_value: pulumi.Input[str] = raw.base64.apply(fernet_key_from_base64)
        else:
            fernet_value = args.field_encryption_key
        self.field_encryption_key = _checked(subject, "fieldEncryptionKey", fernet_value, check_fernet_key)

        # With an external broker there is no password of ours to generate, keep or rotate.
        self.redis_password = None
        if args.holds_redis_password and args.redis_password is None:
            self.redis_password = self._password(resource_name, "redisPassword", keepers, generated, subject)
        elif args.holds_redis_password:
            assert args.redis_password is not None
            self.redis_password = _checked(subject, "redisPassword", args.redis_password, check_redis_password)

        # The Sentinels' own password: generated only for a Sentinel broker of ours.
        self.sentinel_password: pulumi.Output[str] | None = None
        if args.holds_sentinel_password:
            self.sentinel_password = self._password(resource_name, "sentinelPassword", keepers, generated, subject)

        self.database_url = _checked(subject, "databaseUrl", args.database_url, check_database_url)
        self.sentry_dsn = (
            None if args.sentry_dsn is None else _checked(subject, "sentryDsn", args.sentry_dsn, check_sentry_dsn)
        )

        data: dict[str, pulumi.Output[str]] = {
            SECRET_KEY: self.django_secret_key,
            FIELD_ENCRYPTION_KEY: self.field_encryption_key,
            DATABASE_URL: self.database_url,
        }
        if self.redis_password is not None:
            data[REDIS_PASSWORD] = self.redis_password
        if self.sentinel_password is not None:
            data[SENTINEL_PASSWORD] = self.sentinel_password
        if self.sentry_dsn is not None:
            data[SENTRY_DSN] = self.sentry_dsn
        self.keys = tuple(sorted(data))
        self.secret = k8s.core.v1.Secret(
            resource_name,
            metadata={
                "namespace": args.namespace,
                "labels": standard_labels("celery-platform", resource_name, "secrets"),
                # Each generated key's keeper, never a value: a review of the render shows a rotation.
                "annotations": {f"{ROTATION_ANNOTATION}{name}": str(rotation.keepers()[name]) for name in generated},
            },
            type="Opaque",
            string_data=pulumi.Output.all(**data).apply(pulumi.Output.secret),
            opts=child,
        )
        self.secret_name = self.secret.metadata.name
        self.register_outputs(
            {
                "secret_name": self.secret_name,
                "django_secret_key": self.django_secret_key,
                "field_encryption_key": self.field_encryption_key,
                "redis_password": self.redis_password,
            }
        )

    def _password(
        self, resource_name: str, key: str, keepers: dict[str, dict[str, str]], generated: list[str], subject: str
    ) -> pulumi.Output[str]:
        """Generate a URL-safe password (letters and digits) under its own keeper, checked like a given one."""
        kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in key)
        password = random.RandomPassword(
            f"{resource_name}-{kebab}",
            length=REDIS_PASSWORD_LENGTH,
            special=False,
            keepers=keepers[key],
            opts=pulumi.ResourceOptions(parent=self),
        )
        generated.append(key)
        self.generators.append(password)
        return _checked(subject, key, password.result, check_redis_password)


__all__ = ["PlatformSecrets", "Rotation", "SecretsArgs", "ValidationError", "fernet_key_from_base64"]

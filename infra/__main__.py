"""The celery-platform program: read the stack config, compose the components, export the outputs."""

import pulumi

from components.namespace import NamespaceArgs, PlatformNamespace
from components.secrets import PlatformSecrets, SecretsArgs
from infra.config import load_stack_config


def _secret(value: str) -> pulumi.Output[str] | None:
    """Wrap a secret config value, or give None when the stack leaves it unset."""
    return pulumi.Output.secret(value) if value else None


config = load_stack_config()

namespace = PlatformNamespace(
    "celery-platform",
    NamespaceArgs(name=config.namespace, limit_range=config.limit_range, quota=config.quota),
)
secrets = PlatformSecrets(
    "celery-secrets",
    SecretsArgs(
        namespace=namespace.name,
        rotation=config.rotation,
        database_url=pulumi.Output.secret(config.database_url),
        sentry_dsn=_secret(config.sentry_dsn),
        django_secret_key=_secret(config.django_secret_key),
        field_encryption_key=_secret(config.field_encryption_key),
        redis_password=_secret(config.redis_password),
    ),
    opts=pulumi.ResourceOptions(depends_on=[namespace]),
)

pulumi.export("namespace", namespace.name)
pulumi.export("secretName", secrets.secret_name)

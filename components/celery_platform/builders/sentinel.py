"""Pure builders of what a Sentinel-fronted broker needs in a Celery pod: the client env and wait-for-broker.

With Sentinel, a client never names the master: it asks the Sentinels. Celery's broker URL lists
every Sentinel (``sentinel://:<redis password>@host:26379/0;...``); the master's name and the
Sentinels' own password travel beside it as ``CELERY_BROKER_SENTINEL_MASTER`` and
``CELERY_BROKER_SENTINEL_PASSWORD``, which the hooks module and the exporter turn into Celery's
transport options (``master_name``, ``sentinel_kwargs``).
"""

from __future__ import annotations

from typing import Any

from celery_platform.builders.workloads import secret_env, security_context
from celery_platform.config.broker import SentinelClient
from celery_platform.config.specs import PodResources

MASTER_ENV = "CELERY_BROKER_SENTINEL_MASTER"
PASSWORD_ENV = "CELERY_BROKER_SENTINEL_PASSWORD"
SENTINELS_ENV = "BROKER_SENTINELS"

# Asks each Sentinel in turn for the master's address (the Sentinels' password through REDISCLI_AUTH,
# never in a process list), then waits until that address answers ROLE with "master" under the
# Redis password taken from the URL's first entry: a replica or a demoted master is not enough.
_WAIT_SCRIPT = "; ".join(
    [
        'first="${CELERY_BROKER_URL%%;*}"',
        'rest="${first#*://}"',
        'redis_auth=""',
        'case "$rest" in *@*) creds="${rest%@*}"; redis_auth="${creds#*:}";; esac',
        "master_is_up() { "
        "for sentinel in $BROKER_SENTINELS; do "
        'set -- $(REDISCLI_AUTH="$CELERY_BROKER_SENTINEL_PASSWORD" redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" '
        '--raw sentinel get-master-addr-by-name "$CELERY_BROKER_SENTINEL_MASTER" 2>/dev/null); '
        'case "$2" in ""|*[!0-9]*) continue;; esac; '
        'REDISCLI_AUTH="$redis_auth" redis-cli -h "$1" -p "$2" --raw role 2>/dev/null | head -n 1 | grep -qx master '
        "&& return 0; "
        "done; return 1; }",
        "until master_is_up; "
        'do echo "waiting for the master $CELERY_BROKER_SENTINEL_MASTER through the Sentinels $BROKER_SENTINELS"; '
        "sleep 2; done",
    ]
)


def sentinel_client_env(client: SentinelClient) -> list[dict[str, Any]]:
    """Return the env beside CELERY_BROKER_URL that a Sentinel client needs: master name, Sentinel password."""
    env: list[dict[str, Any]] = [{"name": MASTER_ENV, "value": client.master_name}]
    if client.password is not None:
        env.append(secret_env(PASSWORD_ENV, client.password[0], client.password[1]))
    return env


def wait_for_sentinel_broker(
    *, redis_image: str, client: SentinelClient, url_secret: Any, url_key: str, resources: PodResources
) -> dict[str, Any]:
    """Return the init container that waits until the Sentinels name a master and it answers as master."""
    return {
        "name": "wait-for-broker",
        "image": redis_image,
        "command": ["sh", "-c", _WAIT_SCRIPT],
        "env": [
            secret_env("CELERY_BROKER_URL", url_secret, url_key),
            *sentinel_client_env(client),
            {"name": SENTINELS_ENV, "value": client.joined(" ")},
        ],
        "resources": resources.to_k8s(),
        "securityContext": security_context(),
    }

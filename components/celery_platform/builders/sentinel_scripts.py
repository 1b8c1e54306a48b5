"""The start scripts and probes of ``broker.type: sentinel``'s own pods: POSIX sh, in the Redis image.

A data node or a Sentinel never trusts its ordinal alone: a pod that restarts after a failover must
follow the master that the Sentinels elected, not the one it was created under.

Env contract (set by ``builders.sentinel_pods``; every host:port is a stable DNS name in a cluster, an
address on the loopback in the runtime tier):

Both containers
    ``REDIS_PASSWORD``      the data nodes' password (their ``requirepass`` and ``masterauth``; the
                            Sentinels' ``auth-pass``). From the platform Secret.
    ``SENTINEL_PASSWORD``   the Sentinels' own password (their ``requirepass``; Sentinels authenticate to
                            each other with it). From the platform Secret.
    ``SENTINEL_MASTER``     the master's name, e.g. ``celery``.
    ``REDIS_NODES``         every data node as host:port, space-separated, node 0 first.
    ``SENTINELS``           every Sentinel as host:port, space-separated.
    ``CONF_DIR``            a writable directory (an emptyDir) for the generated config file, which holds
                            the passwords: never on a command line, never on the persistent volume.
Data node (``sh -c REDIS_NODE_SCRIPT redis-node [redis-server options ...]``)
    ``REDIS_SELF``          this node as host:port; it announces this to its master and the Sentinels.
    ``"$@"``                the rest of redis-server's options (maxmemory, noeviction, AOF, dir,
                            min-replicas-to-write, min-replicas-max-lag), visible in the pod spec.
Sentinel (``sh -c SENTINEL_SCRIPT sentinel``)
    ``SENTINEL_SELF``       this Sentinel as host:port; it announces this to its peers.
    ``SENTINEL_QUORUM``, ``SENTINEL_DOWN_AFTER_MS``, ``SENTINEL_FAILOVER_TIMEOUT_MS``

Who is master, at a data node's start: the master that any Sentinel names (``SENTINEL
get-master-addr-by-name``); else, no Sentinel knowing one, a node that answers ``ROLE`` as master; else
node 0 (the first start of the whole set). A Sentinel's start: the master that a peer Sentinel names;
else a node that answers ``ROLE`` as master; else node 0.
"""

from __future__ import annotations

# Shared helpers: split host:port; ask the Sentinels; ask the nodes. REDISCLI_AUTH keeps passwords out
# of every process list.
_COMMON = r"""
set -eu
host_of() { echo "${1%:*}"; }
port_of() { echo "${1##*:}"; }
sentinel_master() {
  for s in $SENTINELS; do
    [ "$s" = "${SENTINEL_SELF:-}" ] && continue
    out=$(REDISCLI_AUTH="$SENTINEL_PASSWORD" timeout 3 redis-cli -h "$(host_of "$s")" -p "$(port_of "$s")" \
      --raw sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null) || continue
    set -- $out
    case "${2:-}" in ""|*[!0-9]*) continue;; esac
    echo "$1:$2"; return 0
  done
  return 1
}
node_master() {
  for n in $REDIS_NODES; do
    [ "$n" = "${REDIS_SELF:-}" ] && continue
    role=$(REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli -h "$(host_of "$n")" -p "$(port_of "$n")" \
      --raw role 2>/dev/null | head -n 1) || continue
    [ "$role" = "master" ] && { echo "$n"; return 0; }
  done
  return 1
}
current_master() { sentinel_master || node_master || echo "${REDIS_NODES%% *}"; }
umask 077
"""

REDIS_NODE_SCRIPT = (
    _COMMON
    + r"""
master=$(current_master)
conf="$CONF_DIR/redis.conf"
{
  echo "requirepass \"$REDIS_PASSWORD\""
  echo "masterauth \"$REDIS_PASSWORD\""
  echo "replica-announce-ip $(host_of "$REDIS_SELF")"
  echo "replica-announce-port $(port_of "$REDIS_SELF")"
  if [ "$master" != "$REDIS_SELF" ]; then
    echo "replicaof $(host_of "$master") $(port_of "$master")"
  fi
} > "$conf"
echo "starting as $([ "$master" = "$REDIS_SELF" ] && echo master || echo "replica of $master")"
exec redis-server "$conf" --port "$(port_of "$REDIS_SELF")" "$@"
"""
)

SENTINEL_SCRIPT = (
    _COMMON
    + r"""
master=$(current_master)
conf="$CONF_DIR/sentinel.conf"
{
  echo "port $(port_of "$SENTINEL_SELF")"
  echo "requirepass \"$SENTINEL_PASSWORD\""
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  echo "sentinel announce-ip $(host_of "$SENTINEL_SELF")"
  echo "sentinel announce-port $(port_of "$SENTINEL_SELF")"
  echo "sentinel monitor $SENTINEL_MASTER $(host_of "$master") $(port_of "$master") $SENTINEL_QUORUM"
  echo "sentinel auth-pass $SENTINEL_MASTER \"$REDIS_PASSWORD\""
  echo "sentinel down-after-milliseconds $SENTINEL_MASTER $SENTINEL_DOWN_AFTER_MS"
  echo "sentinel failover-timeout $SENTINEL_MASTER $SENTINEL_FAILOVER_TIMEOUT_MS"
  echo "sentinel parallel-syncs $SENTINEL_MASTER 1"
} > "$conf"
echo "monitoring $SENTINEL_MASTER at $master"
exec redis-server "$conf" --sentinel
"""
)

# Probes: a node is ready when it answers PING (a replica still loading its first sync answers LOADING);
# a Sentinel is ready when it names a master.
REDIS_NODE_PROBE = [
    "sh",
    "-c",
    'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p "${REDIS_SELF##*:}" ping | grep -q PONG',
]
SENTINEL_PROBE = [
    "sh",
    "-c",
    'REDISCLI_AUTH="$SENTINEL_PASSWORD" redis-cli -h 127.0.0.1 -p "${SENTINEL_SELF##*:}" '
    'sentinel get-master-addr-by-name "$SENTINEL_MASTER" | grep -q .',
]

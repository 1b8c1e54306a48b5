"""The start scripts and probes of ``broker.type: sentinel``'s own pods: POSIX sh, in the Redis image.

A data node or a Sentinel never trusts its ordinal alone: a pod that restarts after a failover must
follow the master that the Sentinels elected, not the one it was created under.

Env contract (set by ``builders.sentinel_pods``; every host:port is a stable DNS name in a cluster, an
address on the loopback in the runtime tier):

Both containers
    ``REDIS_PASSWORD``      the data nodes' password (their ``requirepass`` and ``masterauth``; the
                            Sentinels' ``auth-pass``). From the platform Secret.
    ``SENTINEL_PASSWORD``   the Sentinels' own password (their ``requirepass`` and ``sentinel-pass``:
                            Sentinels authenticate to each other with it). From the platform Secret.
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

Who is master, at a data node's start (the Sentinels are the authority; ROLE is the fallback):

1. The address most of the answering Sentinels give (``SENTINEL get-master-addr-by-name``), when it
   is another node: this node starts as its replica, even if that master is down at the moment (the
   Sentinels repoint their replicas after the failover they are running).
2. Else (no Sentinel answers, or they name this very node) another node that answers ``ROLE`` as
   master: this node starts as its replica. This covers a Sentinel view that lags a promotion.
3. Else, the Sentinels naming this node: it is the master that crashed and came back. If no Sentinel
   holds it down (it is back within ``down-after-milliseconds``), it starts as master from its own
   AOF, and its replicas, which still follow it, resync from it; no failover happens. If Sentinels
   hold it down (``s_down``, ``o_down``, a failover in progress) and know a replica to promote, it
   does not open its port: it asks again every second, and follows the master they elect (step 1);
   only after ``FAILOVER_WAIT_SECONDS`` without a decision (a failover that cannot complete) does it
   start as master, which clears their down state. Clients meanwhile get refusals, never a write into
   a master that a failover is about to demote.
4. Else (the first start of the whole set; or every Sentinel and every node restarting at once),
   node 0 is master and every other node its replica.

A Sentinel's start: the master that its answering peers name, if that node answers ``ROLE`` master;
else a node that answers ``ROLE`` master (every Sentinel restarted while the nodes run); else the
peers' answer (a master that is down: this Sentinel joins its failover); else node 0. Sentinel exits
on a monitor address that does not resolve, so the script waits up to ``RESOLVE_WAIT_SECONDS`` for the
master's DNS name (a pod just created), then exits for the kubelet to restart it. A restarted
Sentinel gets a new run id; its peers drop the entry of the old one, which had the same announced
address, when its first hello arrives.

Probes: readiness (``REDIS_NODE_PROBE``, ``SENTINEL_PROBE``) asks for a master (a data node that is
loaded and is the master or a replica with its link up; a Sentinel that holds its master up); startup
and liveness (``*_LIVENESS_PROBE``) ask only that the server answers, so that losing the master
restarts no replica and no Sentinel.

Every question to a peer is bounded (``timeout 3``) and tolerated: a peer that is down, unresolvable,
or answers an error counts as no answer. Nothing that can fail runs unguarded under ``set -eu``.
"""

from __future__ import annotations

#: How long a restarting master waits for the Sentinels that hold it down to elect another master.
FAILOVER_WAIT_SECONDS = 30
#: The data node's preStop hook's bound: its own deadline, and the ``timeout`` its command runs under.
PRESTOP_SECONDS = 20
#: Redis' own ``shutdown-timeout`` (the default): how long a master's SIGTERM waits for lagging replicas.
REDIS_SHUTDOWN_SECONDS = 10
#: How long a starting Sentinel waits for the master's DNS name to resolve before it exits (and is restarted).
RESOLVE_WAIT_SECONDS = 60

# Shared helpers. REDISCLI_AUTH keeps passwords out of every process list; conf_quote escapes a value
# for Redis' config parser (sdssplitargs) through a pipe, so the password is never an argument either.
_COMMON = r"""
set -eu
set -f
umask 077
log() { printf '%s %s: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$0" "$*"; }
conf_quote() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"; }
ask_sentinel() {
  addr=$1; shift
  REDISCLI_AUTH="$SENTINEL_PASSWORD" timeout 3 redis-cli -h "${addr%:*}" -p "${addr##*:}" --raw "$@" \
    2>/dev/null || true
}
ask_node() {
  addr=$1; shift
  REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli -h "${addr%:*}" -p "${addr##*:}" --raw "$@" \
    2>/dev/null || true
}
# The master that most of the answering peer Sentinels name, as host:port; fails when none names one.
sentinel_master() {
  answers=""
  for s in $SENTINELS; do
    [ "$s" = "${SENTINEL_SELF:-}" ] && continue
    answer=$(ask_sentinel "$s" sentinel get-master-addr-by-name "$SENTINEL_MASTER" | tr '\n' ' ')
    set -- $answer
    [ $# -eq 2 ] || continue
    case "$2" in ""|*[!0-9]*) continue;; esac
    answers="$answers$1:$2
"
  done
  [ -n "$answers" ] || return 1
  printf '%s' "$answers" | sort | uniq -c | sort -rn | { read -r _ best && echo "$best"; }
}
node_role() { ask_node "$1" role | head -n 1; }
# Another node that answers ROLE as master; fails when none does.
node_master() {
  for n in $REDIS_NODES; do
    [ "$n" = "${REDIS_SELF:-}" ] && continue
    [ "$(node_role "$n")" = master ] && { echo "$n"; return 0; }
  done
  return 1
}
first_node() { set -- $REDIS_NODES; echo "$1"; }
"""

REDIS_NODE_SCRIPT = (
    _COMMON
    + r"""
# A peer Sentinel holds this node down and knows a replica to promote: a failover may be under way.
held_down() {
  for s in $SENTINELS; do
    state=" $(ask_sentinel "$s" sentinel master "$SENTINEL_MASTER" | tr '\n' ' ')"
    case "$state" in *" flags "*) ;; *) continue;; esac
    flags=${state#*" flags "}
    case "${flags%% *}" in *_down*|*failover*) ;; *) continue;; esac
    case "$state" in *" num-slaves 0 "*) continue;; esac
    return 0
  done
  return 1
}
# Prints "<master host:port> <why>".
resolve() {
  named=$(sentinel_master) || named=""
  if [ -n "$named" ] && [ "$named" != "$REDIS_SELF" ]; then echo "$named named-by-sentinels"; return; fi
  if other=$(node_master); then echo "$other answers-role-master"; return; fi
  if [ -n "$named" ]; then echo "$REDIS_SELF named-by-sentinels"; return; fi
  echo "$(first_node) first-start"
}
since=$(date +%s)
while :; do
  decision=$(resolve)
  master=${decision%% *}
  [ "$master" = "$REDIS_SELF" ] && [ "${decision#* }" = named-by-sentinels ] || break
  held_down || break
  waited=$(($(date +%s) - since))
  [ "$waited" -lt __FAILOVER_WAIT_SECONDS__ ] || { log "no failover after ${waited}s: starting as master"; break; }
  [ "$waited" -gt 0 ] || log "the Sentinels hold this node down: waiting for their failover"
  sleep 1
done
conf="$CONF_DIR/redis.conf"
{
  printf 'requirepass %s\n' "$(conf_quote "$REDIS_PASSWORD")"
  printf 'masterauth %s\n' "$(conf_quote "$REDIS_PASSWORD")"
  echo "replica-announce-ip ${REDIS_SELF%:*}"
  echo "replica-announce-port ${REDIS_SELF##*:}"
  if [ "$master" != "$REDIS_SELF" ]; then
    echo "replicaof ${master%:*} ${master##*:}"
  fi
} > "$conf"
chmod 600 "$conf"
if [ "$master" = "$REDIS_SELF" ]; then
  log "starting as master (${decision#* })"
else
  log "starting as replica of $master (${decision#* })"
fi
exec redis-server "$conf" --port "${REDIS_SELF##*:}" "$@"
"""
).replace("__FAILOVER_WAIT_SECONDS__", str(FAILOVER_WAIT_SECONDS))

SENTINEL_SCRIPT = (
    _COMMON
    + r"""
named=$(sentinel_master) || named=""
if [ -n "$named" ] && [ "$(node_role "$named")" = master ]; then
  master=$named; why=named-by-sentinels
elif master=$(node_master); then
  why=answers-role-master
elif [ -n "$named" ]; then
  master=$named; why=named-by-sentinels-and-down
else
  master=$(first_node); why=first-start
fi
# Sentinel exits on a monitor address that does not resolve: wait for the master's DNS record (a pod
# just created, or being rescheduled), then let the kubelet restart this container if it never comes.
since=$(date +%s)
until getent hosts "${master%:*}" >/dev/null 2>&1; do
  [ $(($(date +%s) - since)) -lt __RESOLVE_WAIT_SECONDS__ ] || { log "${master%:*} does not resolve"; exit 1; }
  sleep 1
done
conf="$CONF_DIR/sentinel.conf"
{
  echo "port ${SENTINEL_SELF##*:}"
  printf 'dir %s\n' "$(conf_quote "$CONF_DIR")"
  printf 'requirepass %s\n' "$(conf_quote "$SENTINEL_PASSWORD")"
  printf 'sentinel sentinel-pass %s\n' "$(conf_quote "$SENTINEL_PASSWORD")"
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  echo "sentinel announce-ip ${SENTINEL_SELF%:*}"
  echo "sentinel announce-port ${SENTINEL_SELF##*:}"
  echo "sentinel monitor $SENTINEL_MASTER ${master%:*} ${master##*:} $SENTINEL_QUORUM"
  printf 'sentinel auth-pass %s %s\n' "$SENTINEL_MASTER" "$(conf_quote "$REDIS_PASSWORD")"
  echo "sentinel down-after-milliseconds $SENTINEL_MASTER $SENTINEL_DOWN_AFTER_MS"
  echo "sentinel failover-timeout $SENTINEL_MASTER $SENTINEL_FAILOVER_TIMEOUT_MS"
  echo "sentinel parallel-syncs $SENTINEL_MASTER 1"
} > "$conf"
chmod 600 "$conf"
log "monitoring $SENTINEL_MASTER at $master ($why)"
exec redis-server "$conf" --sentinel
"""
).replace("__RESOLVE_WAIT_SECONDS__", str(RESOLVE_WAIT_SECONDS))

# The data node's preStop hook: a master hands its role to an in-sync replica before it stops, so that a
# roll-out (a StatefulSet restarts the master, node 0, last) costs clients a pause, not a restart in place
# (a new replication id, every replica's full resync, NOREPLICAS until one is done).
#  1. Not the master, or no replica online that acknowledged within the last second: do nothing.
#  2. Pause writes (CLIENT PAUSE WRITE, as Redis' own FAILOVER does); wait until every online replica has every byte.
#  3. Ask the Sentinels, in turn, for SENTINEL FAILOVER; once the Sentinel that ran it and then every one
#     that answers name the promoted node, and it has the replicas min-replicas-to-write asks for, kill
#     this node's client connections and make it a replica of the new master (what Sentinel itself does
#     ~10 s later: "+convert-to-slave"). Clients reconnect through the Sentinels, to the new master; a
#     killed connection is a connection error, which Celery retries (an error reply, e.g. UNBLOCKED
#     or NOREPLICAS, is fatal to a Celery 5.7 worker).
# Every wait has one deadline (PRESTOP_SECONDS, also the command's own `timeout`); whatever fails or runs
# out, writes are resumed and the node stops as it would without the hook.
REDIS_NODE_PRESTOP_SCRIPT = (
    _COMMON
    + r"""
self_addr="127.0.0.1:${REDIS_SELF##*:}"
deadline=$(($(date +%s) + __PRESTOP_SECONDS__ - 2))
in_time() { [ "$(date +%s)" -lt "$deadline" ]; }
info() { ask_node "$1" info replication | tr -d '\r'; }
field() { sed -n "s/^$1://p"; }
# Every Sentinel that answers names $1 (a client asks them in turn and takes the first answer).
all_name() {
  for s in $SENTINELS; do
    a=$(ask_sentinel "$s" sentinel get-master-addr-by-name "$SENTINEL_MASTER" | tr '\n' ':')
    [ -z "$a" ] || [ "${a%:}" = "$1" ] || return 1
  done
}
resume() { ask_node "$self_addr" client unpause >/dev/null; log "$1: writes resumed, stopping as master"; exit 0; }
state=$(info "$self_addr")
case "$state" in *role:master*) ;; *) log "not the master: nothing to do"; exit 0;; esac
synced=$(printf '%s\n' "$state" | grep -c '^slave[0-9]*:.*state=online,.*lag=[01]$' || true)
[ "$synced" -gt 0 ] || { log "no replica in sync: stopping as master"; exit 0; }
ask_node "$self_addr" client pause "$((__PRESTOP_SECONDS__ * 1000))" write >/dev/null
log "writes paused; waiting until every replica has every write"
# Every online replica: the Sentinels pick by priority, then by the offset they last saw, which may be old.
until state=$(info "$self_addr"); offset=$(printf '%s\n' "$state" | field master_repl_offset);
  online=$(printf '%s\n' "$state" | grep -c '^slave[0-9]*:.*state=online' || true);
  current=$(printf '%s\n' "$state" | grep '^slave[0-9]*:.*state=online' | grep -c ",offset=$offset," || true);
  [ "$online" -gt 0 ] && [ "$current" -eq "$online" ]; do
  in_time || resume "the replicas did not catch up"
  sleep 0.1
done
asked=""
for s in $SENTINELS; do
  answer=$(ask_sentinel "$s" sentinel failover "$SENTINEL_MASTER" | head -n 1)
  [ "$answer" = OK ] && { asked=$s; break; }
  log "$s: failover refused: ${answer:-no answer}"
done
[ -n "$asked" ] || resume "no Sentinel ran a failover"
log "$asked runs the failover"
named=""
until [ -n "$named" ] && [ "$named" != "$REDIS_SELF" ] && [ "$(node_role "$named")" = master ]; do
  in_time || resume "no other master was elected"
  sleep 0.1
  named=$(ask_sentinel "$asked" sentinel get-master-addr-by-name "$SENTINEL_MASTER" | tr '\n' ':')
  named=${named%:}
done
# Every Sentinel names it, and it takes writes: it has the replicas that min-replicas-to-write asks for.
need=$(ask_node "$named" config get min-replicas-to-write | sed -n 2p)
until all_name "$named" && good=$(info "$named" | field min_slaves_good_slaves) &&
  [ "${good:-0}" -ge "${need:-0}" ]; do
  in_time || { log "the Sentinels or $named not settled in time: going on"; break; }
  sleep 0.2
done
printf 'MULTI\nCLIENT KILL TYPE normal\nREPLICAOF %s %s\nEXEC\nCLIENT UNPAUSE\n' "${named%:*}" "${named##*:}" |
  REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli -h 127.0.0.1 -p "${REDIS_SELF##*:}" >/dev/null 2>&1 || true
until [ "$(node_role "$self_addr")" = slave ]; do
  in_time || resume "still not a replica"
  sleep 0.1
done
log "now a replica of $named: stopping"
"""
).replace("__PRESTOP_SECONDS__", str(PRESTOP_SECONDS))

# Probes run inside the container with its env (the kubelet bounds them by timeoutSeconds).
# Readiness of a data node: it has loaded its data, and is a master, or a replica whose link to its
# master is up (synced): a masterless replica is not ready, so a StatefulSet roll-out waits for each
# replica's sync and a PDB counts only nodes that serve.
REDIS_NODE_PROBE = [
    "sh",
    "-c",
    'info=$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p "${REDIS_SELF##*:}" info 2>/dev/null)'
    ' || exit 1; case "$info" in *loading:0*) ;; *) exit 1;; esac;'
    ' case "$info" in *role:master*|*master_link_status:up*) exit 0;; esac; exit 1',
]
# Liveness of a data node: the server answers at all (LOADING, BUSY and MASTERDOWN are answers). A
# replica whose master is down stays alive: restarting it would not bring the master back.
REDIS_NODE_LIVENESS_PROBE = [
    "sh",
    "-c",
    'out=$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p "${REDIS_SELF##*:}" ping 2>/dev/null)'
    ' || exit 1; case "$out" in PONG*|LOADING*|BUSY*|MASTERDOWN*) exit 0;; esac; exit 1',
]
# Readiness of a Sentinel: it monitors the master and holds it up (flags exactly "master": not
# s_down, o_down, disconnected or failing over). Quorum is not required, so the first Sentinel of a
# StatefulSet can become ready alone.
SENTINEL_PROBE = [
    "sh",
    "-c",
    'state=$(REDISCLI_AUTH="$SENTINEL_PASSWORD" redis-cli -h 127.0.0.1 -p "${SENTINEL_SELF##*:}"'
    ' sentinel master "$SENTINEL_MASTER" 2>/dev/null | tr "\\n" " ") || exit 1;'
    ' case " $state" in *" flags master "*) exit 0;; esac; exit 1',
]
# Liveness of a Sentinel: it answers PING; a lost master is what a Sentinel exists to handle.
SENTINEL_LIVENESS_PROBE = [
    "sh",
    "-c",
    'out=$(REDISCLI_AUTH="$SENTINEL_PASSWORD" redis-cli -h 127.0.0.1 -p "${SENTINEL_SELF##*:}" ping 2>/dev/null)'
    ' || exit 1; case "$out" in PONG*) exit 0;; esac; exit 1',
]

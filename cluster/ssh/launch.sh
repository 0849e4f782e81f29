#!/usr/bin/env bash
# Launches a Heed cluster over plain SSH.
#   usage: launch.sh HOSTFILE RUN.toml [SERVERS] [COORDINATOR FLAGS...]
# HOSTFILE lists one host per line: the first runs the coordinator, the next SERVERS
# hosts run one server each, the rest run one worker each. Each role listens on its
# host's name or address as written in HOSTFILE (never a wildcard), so write the
# addresses the other hosts reach it at. The config's data.path (and any checkpoint
# directory) must be readable at the same path on every host. Extra flags go to the
# coordinator, which hands the run config to every role (e.g. --resume latest).
# HEED_BIN names the binary on the hosts (default: heed on PATH); ssh and scp are taken
# from PATH, so ~/.ssh/config (or a wrapper) decides keys and users. Ctrl-C stops every
# role. The exit status is the coordinator's: non-zero when any role failed.
set -euo pipefail
hostfile=$1; config=$2; servers=${3:-1}
shift $(( $# >= 3 ? 3 : $# ))
heed=${HEED_BIN:-heed}
mapfile -t hosts < <(grep -v '^\s*#' "$hostfile" | grep -v '^\s*$')
(( ${#hosts[@]} >= servers + 2 )) || { echo "launch.sh: need at least $((servers + 2)) hosts" >&2; exit 1; }
coord=${hosts[0]}; port=${HEED_PORT:-7070}
# Roles refuse to listen on a non-loopback address without a cluster secret. Without
# HEED_SECRET_FILE (a path with mode 0600 on every host), make one and copy it to each
# host, readable by its owner only, and delete it at the end.
pids=()
remote_secret=/tmp/heed-secret-$$
remote_config=/tmp/heed-run-$$.toml
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ssh "$coord" rm -f "$remote_config" 2>/dev/null || true
  if [ -z "${HEED_SECRET_FILE:-}" ]; then for h in "${hosts[@]}"; do ssh "$h" rm -f "$remote_secret" 2>/dev/null || true; done; fi
}
trap cleanup INT TERM EXIT
if [ -n "${HEED_SECRET_FILE:-}" ]; then
  secret_args=(--secret-file "$HEED_SECRET_FILE")
else
  key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for h in "${hosts[@]}"; do printf '%s' "$key" | ssh "$h" "umask 077; cat > $remote_secret"; done
  secret_args=(--secret-file "$remote_secret")
fi

scp -q "$config" "$coord:$remote_config"
ssh "$coord" "$heed" coordinator --listen "tcp://$coord:$port" --config "$remote_config" "${secret_args[@]}" "$@" & pids+=($!)
for ((k = 0; k < servers; k++)); do
  h=${hosts[$((1 + k))]}
  ssh "$h" "$heed" server --coordinator "tcp://$coord:$port" --listen "tcp://$h:$((port + 1))" \
      --rank "$k" "${secret_args[@]}" & pids+=($!)
done
rank=0
for h in "${hosts[@]:$((1 + servers))}"; do
  ssh "$h" "$heed" worker --coordinator "tcp://$coord:$port" --rank "$rank" "${secret_args[@]}" & pids+=($!)
  rank=$((rank + 1))
done
set +e
wait "${pids[0]}"
status=$?
# Give the other roles a moment to finish on their own after the coordinator ends.
for p in "${pids[@]:1}"; do
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
exit $status

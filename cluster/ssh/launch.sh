#!/usr/bin/env bash
# Launches a Heed cluster over plain SSH.
#   usage: launch.sh HOSTFILE RUN.toml [SERVERS]
# HOSTFILE lists one host per line: the first runs the coordinator, the next SERVERS
# hosts run one server each, the rest run one worker each. `heed` must be on PATH on
# every host and the config's data.path readable there. Ctrl-C stops every role.
set -euo pipefail
hostfile=$1; config=$2; servers=${3:-1}
mapfile -t hosts < <(grep -v '^\s*#' "$hostfile" | grep -v '^\s*$')
(( ${#hosts[@]} >= servers + 2 )) || { echo "launch.sh: need at least $((servers + 2)) hosts" >&2; exit 1; }
coord=${hosts[0]}; port=7070
# Roles refuse to listen on a non-loopback address without a cluster secret. Without
# HEED_SECRET_FILE (a path with mode 0600 on every host), make one and copy it to each
# host readable by its owner only.
pids=()
remote_secret=/tmp/heed-secret-$$
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
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

scp -q "$config" "$coord:/tmp/heed-run.toml"
ssh "$coord" heed coordinator --listen "tcp://0.0.0.0:$port" --config /tmp/heed-run.toml "${secret_args[@]}" & pids+=($!)
for ((k = 0; k < servers; k++)); do
  h=${hosts[$((1 + k))]}
  ssh "$h" heed server --coordinator "tcp://$coord:$port" --listen "tcp://0.0.0.0:$((port + 1))" \
      --advertise "tcp://$h:$((port + 1))" --rank "$k" "${secret_args[@]}" & pids+=($!)
done
rank=0
for h in "${hosts[@]:$((1 + servers))}"; do
  ssh "$h" heed worker --coordinator "tcp://$coord:$port" --rank "$rank" "${secret_args[@]}" & pids+=($!)
  rank=$((rank + 1))
done
# The coordinator's exit status is the run's: it is non-zero when any role failed.
wait "${pids[0]}"

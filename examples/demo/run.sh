#!/usr/bin/env bash
# Runs the demo: the simulated fleet and the agent scraping it, both on
# loopback, until Ctrl-C. Usage: run.sh BIN_DIR
set -euo pipefail
bin=${1:-bin}
here=$(cd "$(dirname "$0")" && pwd)
data=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT INT TERM

"$bin/llmsim" --config.file "$here/fleet.yml" \
  --webhook.listen-address 127.0.0.1:18099 --webhook.secret-file "$here/webhook-secret" &
pids+=($!)
"$bin/perfagent" --config.file "$here/perfagent.yml" --storage.path "$data" \
  --web.listen-address 127.0.0.1:8002 --web.config.file "$here/web.yml" --log.level warn &
pids+=($!)

cat <<'MSG'

perfagent demo
  agent:       http://127.0.0.1:8002/  (users alice and bob, password "demo")
               curl -u alice:demo http://127.0.0.1:8002/api/v1/instances
               curl -u alice:demo http://127.0.0.1:8002/api/v1/bottlenecks
               curl -u alice:demo http://127.0.0.1:8002/api/v1/recommendations
  vLLM:        http://127.0.0.1:18000/metrics  18001  18002 (under KV-cache pressure)
  SGLang:      http://127.0.0.1:18003/metrics
  TGI:         http://127.0.0.1:18004/metrics
Signals appear within half a minute, bottlenecks after their rules' `for`.
Start a workflow as alice, approve it as bob:
  curl -u alice:demo -XPOST http://127.0.0.1:8002/api/v1/workflows -d '{"recommendation":"ID","instance":"127.0.0.1:18002"}'
  curl -u bob:demo -XPOST http://127.0.0.1:8002/api/v1/workflows/WID/approve -d '{"proposal_hash":"HASH"}'
Ctrl-C stops both.

MSG
wait -n "${pids[@]}"

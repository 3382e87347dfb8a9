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

"$bin/llmsim" --config.file "$here/fleet.yml" &
pids+=($!)
"$bin/perfagent" --config.file "$here/perfagent.yml" --storage.path "$data" \
  --web.listen-address 127.0.0.1:8002 --log.level warn &
pids+=($!)

cat <<MSG

perfagent demo
  agent:       http://127.0.0.1:8002/            (web page)
               http://127.0.0.1:8002/api/v1/instances
               http://127.0.0.1:8002/metrics
  vLLM:        http://127.0.0.1:18000/metrics  18001  18002 (under KV-cache pressure)
  SGLang:      http://127.0.0.1:18003/metrics
  TGI:         http://127.0.0.1:18004/metrics
Signals appear within half a minute. Ctrl-C stops both.

MSG
wait -n "${pids[@]}"

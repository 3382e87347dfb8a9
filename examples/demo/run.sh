#!/usr/bin/env bash
# Runs the demo: the simulated fleet and the agent scraping it and, when
# they are installed, the rest of the stack of examples/stack: Debian's
# prometheus-alertmanager for the agent's alerts, Debian's prometheus
# scraping the agent with the mixin's alerts, and Grafana with the
# dashboards, all on loopback, until Ctrl-C.
# Usage: run.sh BIN_DIR
# Environment (all optional): DEMO_SPEED, simulated seconds per second
# (default 1); DEMO_WORKFLOW_WARMUP and DEMO_WORKFLOW_WINDOW replace the
# workflow warm-up and window of perfagent.yml (e.g. 20s, 40s).
set -euo pipefail
bin=${1:-bin}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# The agent reads its configuration from a file: with other workflow
# times, it reads a copy (next to a copy of the secret it names).
config=$here/perfagent.yml
edits=()
if [[ -n ${DEMO_WORKFLOW_WARMUP:-} ]]; then
  edits+=(-e "s/^  warmup: .*/  warmup: $DEMO_WORKFLOW_WARMUP/")
fi
if [[ -n ${DEMO_WORKFLOW_WINDOW:-} ]]; then
  edits+=(-e "s/^  window: .*/  window: $DEMO_WORKFLOW_WINDOW/")
fi
if ((${#edits[@]})); then
  config=$tmp/perfagent.yml
  cp "$here/webhook-secret" "$tmp/"
  sed "${edits[@]}" "$here/perfagent.yml" >"$config"
fi

"$bin/llmsim" --config.file "$here/fleet.yml" serve --speed "${DEMO_SPEED:-1}" \
  --webhook.listen-address 127.0.0.1:18099 --webhook.secret-file "$here/webhook-secret" &
pids+=($!)
"$bin/perfagent" --config.file "$config" --storage.path "$tmp/agent" \
  --web.listen-address 127.0.0.1:8002 --web.config.file "$here/web.yml" --log.level warn &
pids+=($!)
waitfor=("${pids[@]}")

stack=$here/../stack
# started: whether the process started last is still running a second later.
started() {
  sleep 1
  kill -0 "${pids[-1]}" 2>/dev/null
}

# perfagent.yml always names this Alertmanager; without it, sending alerts
# fails and is counted, and workflows run as usual.
alertmanager="http://127.0.0.1:19093/  (bottleneck and approval alerts)"
if command -v prometheus-alertmanager >/dev/null; then
  prometheus-alertmanager --config.file "$stack/alertmanager.yml" \
    --storage.path "$tmp/alertmanager" --web.listen-address 127.0.0.1:19093 \
    --cluster.listen-address= --log.level warn &
  pids+=($!)
  started || alertmanager="did not start (see its error above): alerts to it fail and are counted"
else
  alertmanager="not installed (apt-get install prometheus-alertmanager): alerts to
                127.0.0.1:19093 fail and are counted, workflows run without it"
fi

prometheus="http://127.0.0.1:19090/  (scrapes the agent; the mixin's alerts)"
if command -v prometheus >/dev/null; then
  prometheus --config.file "$stack/prometheus.yml" --storage.tsdb.path "$tmp/prometheus" \
    --web.listen-address 127.0.0.1:19090 --log.level warn &
  pids+=($!)
  started || prometheus="did not start (see its error above)"
else
  prometheus="not installed (apt-get install prometheus)"
fi

# Grafana is not a Debian package; with Grafana's own package installed,
# it provisions the Prometheus above and the dashboards.
grafana="not installed (Grafana's own package): dashboards/ holds the JSON to import"
grafana_bin=$(command -v grafana || command -v grafana-server || true)
if [[ -n $grafana_bin ]]; then
  sub=()
  [[ $(basename "$grafana_bin") == grafana ]] && sub=(server)
  PERFAGENT_DASHBOARDS=$here/../../dashboards \
  GF_PATHS_PROVISIONING=$stack/grafana/provisioning GF_PATHS_DATA=$tmp/grafana \
  GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT=13000 \
  GF_AUTH_ANONYMOUS_ENABLED=true GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer GF_LOG_LEVEL=warn \
    "$grafana_bin" "${sub[@]}" --homepath "${GRAFANA_HOME:-/usr/share/grafana}" &
  pids+=($!)
  grafana="http://127.0.0.1:13000/dashboards  (folder perfagent)"
  started || grafana="did not start (see its error above; GRAFANA_HOME names its home path)"
fi

cat <<MSG

perfagent demo
  agent:        http://127.0.0.1:8002/  web UI; users alice and bob, password "demo"
                curl -u alice:demo http://127.0.0.1:8002/api/v1/instances
                curl -u alice:demo http://127.0.0.1:8002/api/v1/bottlenecks
                curl -u alice:demo http://127.0.0.1:8002/api/v1/recommendations
  alertmanager: $alertmanager
  prometheus:   $prometheus
  grafana:      $grafana
  vLLM:         http://127.0.0.1:18000/metrics  18001  (healthy)
                http://127.0.0.1:18002/metrics  (same server, long generations: KV cache full, preempting)
  SGLang:       http://127.0.0.1:18003/metrics  (small KV pool, retracting)
  TGI:          http://127.0.0.1:18004/metrics  (healthy)
Signals appear within half a minute; the bottlenecks of 18002 and 18003 fire
about five and a half minutes after the start (their rules must hold for 5m).
Then follow "Walk through a change on the demo" in README.md: alice proposes
  curl -s -u alice:demo -XPOST 127.0.0.1:8002/api/v1/workflows -d '{"recommendation":"raise_gpu_memory_utilization","instance":"127.0.0.1:18002"}'
and bob approves, with WID and HASH from that answer:
  curl -s -u bob:demo -XPOST 127.0.0.1:8002/api/v1/workflows/WID/approve -d '{"proposal_hash":"HASH"}'
Ctrl-C stops everything.

MSG
wait -n "${waitfor[@]}"

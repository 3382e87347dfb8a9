// The mixin's knobs. Override them with
//   (import 'mixin.libsonnet') + { _config+:: { perfagentSelector: 'job="llm-agent"' } }
{
  _config+:: {
    // Selects the series Prometheus scrapes from the agent.
    perfagentSelector: 'job="perfagent"',

    // Agent alerts.
    // How long the agent may be down or its source fail before paging.
    downFor: '5m',
    // One collection cycle slower than this at the 99th percentile is slow.
    collectionSlowSeconds: 10,
    // Share of collection cycles that may fail before alerting.
    collectionFailureRatio: 0.1,
    // Share of alerts that may fail to reach Alertmanager, in percent.
    notificationErrorPercent: 1,
    // How long past its deadline (a gate's expiry, the end of a warm-up or
    // window) a workflow may sit before it counts as stuck.
    workflowStuckSeconds: 600,
    // How long an approval request may wait before it is escalated.
    approvalWaitingSeconds: 3600,

    // Detection inside Prometheus: the engine profiles as recording rules
    // and the bottleneck rules as alerts, over the model servers' own
    // metrics scraped by this Prometheus, instead of the agent's own
    // evaluation (docs/alerting.md). Off by default: a Prometheus that
    // also scrapes the agent's signals would evaluate every bottleneck
    // twice. make mixin renders it on into out/detection/.
    bottleneckDetection: false,
    // The range of every rate in the engine profiles: at least four
    // scrapes of the model servers.
    rateWindow: '1m',
    // SLO targets, as the agent's rules.slo: the entry without a model is
    // the default for every model without one of its own.
    slo: [
      { model: '', ttft_p95_seconds: 0.5, itl_p95_seconds: 0.05, error_ratio: 0.05 },
    ],

    // Dashboards.
    dashboardTags: ['perfagent'],
  },
}

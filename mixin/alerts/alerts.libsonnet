// Alerts about the agent itself, and (with _config.bottleneckDetection) the
// built-in bottleneck rules, unchanged.
local bottlenecks = std.parseYaml(importstr '../../rules/builtin/bottlenecks.yml');

{
  prometheusAlerts+:: {
    groups+: [
      {
        name: 'perfagent',
        rules: [
          {
            alert: 'PerfAgentDown',
            expr: 'up{%(perfagentSelector)s} == 0' % $._config,
            'for': $._config.downFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'perfagent {{ $labels.instance }} is down.',
              description: 'Prometheus has not scraped perfagent {{ $labels.instance }} for %(downFor)s: no bottleneck is detected and no workflow advances or rolls back.' % $._config,
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentdown',
            },
          },
          {
            alert: 'PerfAgentSourceDown',
            expr: 'perfagent_source_up{%(perfagentSelector)s} == 0' % $._config,
            'for': $._config.downFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'perfagent {{ $labels.instance }} cannot read its metrics source.',
              description: 'perfagent {{ $labels.instance }} has failed to query its Prometheus (or to scrape any model server) for %(downFor)s; bottlenecks keep their state and workflows pause until it returns.' % $._config,
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentsourcedown',
            },
          },
          {
            alert: 'PerfAgentCollectionFailing',
            expr: |||
              rate(perfagent_collection_failures_total{%(perfagentSelector)s}[5m])
                /
              rate(perfagent_collection_duration_seconds_count{%(perfagentSelector)s}[5m])
                > %(collectionFailureRatio)s
            ||| % $._config,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'perfagent {{ $labels.instance }} fails to compute some signals.',
              description: '{{ $value | humanizePercentage }} of the collection cycles of perfagent {{ $labels.instance }} could not compute every signal; /api/v1/health and the agent log name the rules that fail.',
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentcollectionfailing',
            },
          },
          {
            alert: 'PerfAgentCollectionSlow',
            expr: |||
              histogram_quantile(0.99, sum by (job, instance, le) (rate(perfagent_collection_duration_seconds_bucket{%(perfagentSelector)s}[5m])))
                > %(collectionSlowSeconds)s
            ||| % $._config,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'perfagent {{ $labels.instance }} collects slowly.',
              description: 'The 99th percentile of a collection cycle of perfagent {{ $labels.instance }} is {{ $value | humanizeDuration }}; when it nears the evaluation interval, signals arrive late.',
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentcollectionslow',
            },
          },
          {
            alert: 'PerfAgentRuleEvaluationFailing',
            expr: 'rate(perfagent_rule_evaluation_failures_total{%(perfagentSelector)s}[5m]) > 0' % $._config,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'perfagent {{ $labels.instance }} fails to evaluate bottleneck rules.',
              description: 'Bottleneck rules of perfagent {{ $labels.instance }} fail to evaluate; the agent log names them.',
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentruleevaluationfailing',
            },
          },
          {
            alert: 'PerfAgentNotificationsFailing',
            expr: |||
              rate(perfagent_notifications_errors_total{%(perfagentSelector)s}[5m])
                /
              (
                rate(perfagent_notifications_errors_total{%(perfagentSelector)s}[5m])
                  +
                rate(perfagent_notifications_sent_total{%(perfagentSelector)s}[5m])
              )
                * 100 > %(notificationErrorPercent)s
            ||| % $._config,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'perfagent {{ $labels.instance }} fails to send alerts to {{ $labels.alertmanager }}.',
              description: '{{ printf "%.1f" $value }}% of the alerts perfagent {{ $labels.instance }} sends to {{ $labels.alertmanager }} fail: bottlenecks and approval requests may not reach anyone.',
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentnotificationsfailing',
            },
          },
          {
            alert: 'PerfAgentConfigReloadFailed',
            expr: 'max_over_time(perfagent_config_last_reload_successful{%(perfagentSelector)s}[5m]) == 0' % $._config,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'perfagent {{ $labels.instance }} could not reload its configuration.',
              description: 'The last configuration reload of perfagent {{ $labels.instance }} failed and the previous configuration is still in force; perfagent check config names the problem.',
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentconfigreloadfailed',
            },
          },
          {
            alert: 'PerfAgentWorkflowStuck',
            expr: 'time() - perfagent_workflow_deadline_timestamp_seconds{%(perfagentSelector)s} > %(workflowStuckSeconds)s' % $._config,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Workflow {{ $labels.workflow }} is stuck in {{ $labels.state }}.',
              description: 'Workflow {{ $labels.workflow }} has stayed in {{ $labels.state }} {{ $value | humanizeDuration }} past the end of its wait; the agent may not be ticking it.',
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentworkflowstuck',
            },
          },
          {
            alert: 'PerfAgentApprovalWaiting',
            expr: 'time() - perfagent_workflow_gate_opened_timestamp_seconds{%(perfagentSelector)s} > %(approvalWaitingSeconds)s' % $._config,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Workflow {{ $labels.workflow }} has waited {{ $value | humanizeDuration }} for a decision at gate {{ $labels.gate }}.',
              description: 'Nobody has approved or rejected workflow {{ $labels.workflow }} at gate {{ $labels.gate }}; it expires at the end of its approval window.',
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentapprovalwaiting',
            },
          },
          {
            alert: 'PerfAgentInstancesLeftChanged',
            expr: 'perfagent_workflow_instances_changed{%(perfagentSelector)s, state="needs_attention"} > 0' % $._config,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Workflow {{ $labels.workflow }} left {{ $value }} instance(s) changed.',
              description: 'The rollback of workflow {{ $labels.workflow }} failed for {{ $value }} instance(s); retry it or restore them by hand and say so (docs/workflows.md).',
              runbook_url: 'https://github.com/optiinfra/perfagent/blob/main/docs/alerting.md#perfagentinstancesleftchanged',
            },
          },
        ],
      },
    ] + (if $._config.bottleneckDetection then bottlenecks.groups else []),
  },
}

// With _config.bottleneckDetection: the engine profiles as recording rules
// (every range set to _config.rateWindow) and the SLO targets the
// bottleneck rules compare signals with.
local profiles = {
  vllm: std.parseYaml(importstr '../../collector/profiles/vllm.yml'),
  sglang: std.parseYaml(importstr '../../collector/profiles/sglang.yml'),
  tgi: std.parseYaml(importstr '../../collector/profiles/tgi.yml'),
  trtllm: std.parseYaml(importstr '../../collector/profiles/trtllm.yml'),
  llamacpp: std.parseYaml(importstr '../../collector/profiles/llamacpp.yml'),
};

{
  prometheusRules+:: {
    local c = $._config,
    local sloSeries = {
      ttft_p95_seconds: 'perfagent_slo_ttft_p95_seconds',
      itl_p95_seconds: 'perfagent_slo_itl_p95_seconds',
      error_ratio: 'perfagent_slo_error_ratio',
    },
    groups+: if !c.bottleneckDetection then [] else [
      {
        name: 'perfagent-slo',
        rules: [
          {
            record: sloSeries[field],
            expr: 'vector(%g)' % target[field],
          } + (if target.model == '' then {} else { labels: { model: target.model } })
          for target in c.slo
          for field in std.objectFields(sloSeries)
          if std.objectHas(target, field)
        ],
      },
    ] + [
      {
        name: 'perfagent-profile-' + engine,
        rules: [
          r { expr: std.strReplace(r.expr, '[1m]', '[%s]' % c.rateWindow) }
          for g in profiles[engine].groups
          for r in g.rules
        ],
      }
      for engine in std.objectFields(profiles)
    ],
  },
}

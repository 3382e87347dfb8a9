// The dashboards perfagent's Go code generates (make dashboards), tagged
// with _config.dashboardTags.
local dashboards = {
  'perfagent-fleet.json': import '../../dashboards/perfagent-fleet.json',
  'perfagent-instance.json': import '../../dashboards/perfagent-instance.json',
  'perfagent-workflows.json': import '../../dashboards/perfagent-workflows.json',
  'perfagent-agent.json': import '../../dashboards/perfagent-agent.json',
};

{
  grafanaDashboards+:: {
    [f]: dashboards[f] { tags: $._config.dashboardTags }
    for f in std.objectFields(dashboards)
  },
}

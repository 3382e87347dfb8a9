package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

const agentSel = `job=~"$job"`

func workflows() spec {
	return spec{
		file:  "perfagent-workflows.json",
		uid:   "perfagent-workflows",
		title: "perfagent / Workflows",
		description: "Approval-gated rollouts of recommended changes: workflows by state, the stages of each running one, " +
			"validation verdicts, rollbacks and approvals waiting for a decision.",
		rows: []row{
			{"Now", []cog.Builder[dashboard.Panel]{
				singleStat("Waiting for approval", "Workflows with a gate open for a decision (start, a stage, promotion).", units.Short, 6,
					q(`count(perfagent_workflow_gate_opened_timestamp_seconds{`+agentSel+`}) or vector(0)`, "waiting")),
				singleStat("Running", "Workflows that are neither finished nor waiting for a decision.", units.Short, 6,
					q(`count(perfagent_workflow_info{`+agentSel+`, state!~"awaiting_approval|stage_gate|paused"}) or vector(0)`, "running")),
				singleStat("Instances still changed", "Instances a rollback could not restore: they wait for a person (state needs_attention).", units.Short, 6,
					q(`sum(perfagent_workflow_instances_changed{`+agentSel+`, state="needs_attention"}) or vector(0)`, "still changed")),
				singleStat("Rolled back (24h)", "Workflows that ended rolled back in the last day.", units.Short, 6,
					q(`sum(increase(perfagent_workflow_transitions_total{`+agentSel+`, to="rolled_back"}[1d])) or vector(0)`, "rolled back")),
				labelTable("Unfinished workflows", "Each unfinished workflow: what it changes, its state and the share of its stages behind it.", units.PercentUnit,
					instantQuery(`perfagent_workflow_stage{`+agentSel+`} / on (workflow, state) perfagent_workflow_stages{`+agentSel+`} * on (workflow, state) group_left (engine, model, flag, from, to) perfagent_workflow_info{`+agentSel+`}`)),
				labelTable("Approvals waiting", "Open gates and how long each has waited.", units.Seconds,
					instantQuery(`time() - perfagent_workflow_gate_opened_timestamp_seconds{`+agentSel+`}`)),
			}},
			{"History", []cog.Builder[dashboard.Panel]{
				timeSeries("Workflows by state", "Stored workflows in each state.", units.Short,
					q(`sum by (state) (perfagent_workflows{`+agentSel+`}) > 0`, "{{state}}")),
				timeSeries("Transitions", "State changes of workflows, by state entered.", units.Short,
					q(`sum by (to) (increase(perfagent_workflow_transitions_total{`+agentSel+`}[$__rate_interval]))`, "{{to}}")),
				timeSeries("Validation verdicts", "Canary-versus-baseline validations, by verdict (pass, fail, inconclusive, error).", units.Short,
					q(`sum by (result) (increase(perfagent_workflow_validations_total{`+agentSel+`}[$__rate_interval]))`, "{{result}}")),
				timeSeries("Rollbacks", "Workflows that started rolling back, and those that ended rolled back.", units.Short,
					q(`sum(increase(perfagent_workflow_transitions_total{`+agentSel+`, to="rolling_back"}[$__rate_interval])) or vector(0)`, "started"),
					q(`sum(increase(perfagent_workflow_transitions_total{`+agentSel+`, to="rolled_back"}[$__rate_interval])) or vector(0)`, "ended")),
			}},
		},
	}
}

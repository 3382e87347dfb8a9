package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/config"
)

// TestStackExamples checks the full stack of examples/stack as the demo
// runs it: Prometheus's and Alertmanager's configurations pass their own
// checkers, Grafana's provisioning loads the dashboards directory, and
// every address agrees with the one run.sh starts the component on.
func TestStackExamples(t *testing.T) {
	const stack = "../../examples/stack"
	runSh, err := os.ReadFile("../../examples/demo/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	listen := map[string]string{}
	joined := strings.ReplaceAll(string(runSh), "\\\n", " ")
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:"\$bin/)?([a-z-]+)"? .*--web\.listen-address (\S+)`).FindAllStringSubmatch(joined, -1) {
		listen[m[1]] = m[2]
	}
	for _, c := range []string{"perfagent", "prometheus", "prometheus-alertmanager"} {
		if listen[c] == "" {
			t.Fatalf("run.sh starts no %s with --web.listen-address (found %v)", c, listen)
		}
	}

	var prom struct {
		ScrapeConfigs []struct {
			JobName       string                       `yaml:"job_name"`
			HonorLabels   bool                         `yaml:"honor_labels"`
			StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
			}
		}
	}
	readYAML(t, filepath.Join(stack, "prometheus.yml"), &prom)
	if sc := prom.ScrapeConfigs; len(sc) != 1 || !sc[0].HonorLabels || len(sc[0].StaticConfigs) != 1 || !slices.Equal(sc[0].StaticConfigs[0].Targets, []string{listen["perfagent"]}) {
		t.Errorf("prometheus.yml must scrape the agent at %s with honor_labels: %+v", listen["perfagent"], sc)
	}
	if ams := prom.Alerting.Alertmanagers; len(ams) != 1 || len(ams[0].StaticConfigs) != 1 || !slices.Equal(ams[0].StaticConfigs[0].Targets, []string{listen["prometheus-alertmanager"]}) {
		t.Errorf("prometheus.yml sends alerts to %+v; run.sh starts Alertmanager on %s", ams, listen["prometheus-alertmanager"])
	}
	for _, f := range prom.RuleFiles {
		if _, err := os.Stat(filepath.Join(stack, f)); err != nil {
			t.Errorf("prometheus.yml: rule file %v", err)
		}
	}
	agentCfg, err := config.LoadFile("../../examples/demo/perfagent.yml")
	if err != nil {
		t.Fatal(err)
	}
	if tg := agentCfg.AlertmanagerTargets()["config-0"]; len(tg) != 1 || len(tg[0].Targets) != 1 || string(tg[0].Targets[0]["__address__"]) != listen["prometheus-alertmanager"] {
		t.Errorf("the demo agent sends alerts to %v; run.sh starts Alertmanager on %s", tg, listen["prometheus-alertmanager"])
	}

	var ds struct {
		Datasources []struct{ Type, URL string }
	}
	readYAML(t, filepath.Join(stack, "grafana/provisioning/datasources/perfagent.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://"+listen["prometheus"] {
		t.Errorf("the Grafana data source %+v is not the Prometheus run.sh starts on %s", ds.Datasources, listen["prometheus"])
	}
	var dp struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	readYAML(t, filepath.Join(stack, "grafana/provisioning/dashboards/perfagent.yml"), &dp)
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path != "${PERFAGENT_DASHBOARDS}" {
		t.Errorf("the Grafana dashboard provider %+v must read files from $PERFAGENT_DASHBOARDS", dp.Providers)
	}
	if !strings.Contains(string(runSh), "PERFAGENT_DASHBOARDS=$here/../../dashboards") {
		t.Error("run.sh does not point PERFAGENT_DASHBOARDS at dashboards/")
	}

	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "config", filepath.Join(stack, "prometheus.yml")).CombinedOutput(); err != nil {
			t.Errorf("promtool check config: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool is not installed (apt-get install prometheus): its check skipped")
	}
	if amtool, err := exec.LookPath("amtool"); err == nil {
		if out, err := exec.Command(amtool, "check-config", filepath.Join(stack, "alertmanager.yml")).CombinedOutput(); err != nil {
			t.Errorf("amtool check-config: %v\n%s", err, out)
		}
	} else {
		t.Log("amtool is not installed (apt-get install prometheus-alertmanager): its check skipped")
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

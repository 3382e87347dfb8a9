package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/internal/testutil"
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
	testutil.ReadYAML(t, filepath.Join(stack, "prometheus.yml"), &prom)
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
	testutil.ReadYAML(t, filepath.Join(stack, "grafana/provisioning/datasources/perfagent.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://"+listen["prometheus"] {
		t.Errorf("the Grafana data source %+v is not the Prometheus run.sh starts on %s", ds.Datasources, listen["prometheus"])
	}
	var dp struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	testutil.ReadYAML(t, filepath.Join(stack, "grafana/provisioning/dashboards/perfagent.yml"), &dp)
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

// TestComposeExample checks examples/compose/compose.yaml as far as a
// machine without a container engine can: it parses, every file it mounts
// exists, images are pinned, the services it names exist, every published
// port is one a service listens on, Prometheus finds its rule files
// through the mounts, and the Prometheus and Alertmanager configurations
// it mounts pass promtool and amtool.
func TestComposeExample(t *testing.T) {
	const dir = "../../examples/compose"
	var compose struct {
		Services map[string]struct {
			Image       string
			Entrypoint  []string
			Command     []string
			Volumes     []string
			Ports       []string
			NetworkMode string   `yaml:"network_mode"`
			DependsOn   []string `yaml:"depends_on"`
			Environment map[string]string
		}
		Volumes map[string]any
	}
	testutil.ReadYAML(t, filepath.Join(dir, "compose.yaml"), &compose)
	for _, want := range []string{"llmsim", "perfagent", "prometheus", "alertmanager", "grafana"} {
		if _, ok := compose.Services[want]; !ok {
			t.Errorf("compose.yaml has no %s service", want)
		}
	}
	listens := map[string]bool{}
	// mounts maps a container path of a service to the file it comes from.
	mounts := map[string]map[string]string{}
	for name, s := range compose.Services {
		if i := strings.LastIndex(s.Image, ":"); i <= 0 || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
		if svc, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
			if _, ok := compose.Services[svc]; !ok {
				t.Errorf("%s: network_mode names no service %s", name, svc)
			}
		}
		for _, d := range s.DependsOn {
			if _, ok := compose.Services[d]; !ok {
				t.Errorf("%s: depends on no service %s", name, d)
			}
		}
		mounts[name] = map[string]string{}
		for _, v := range s.Volumes {
			src, rest, _ := strings.Cut(v, ":")
			target, _, _ := strings.Cut(rest, ":")
			if !strings.HasPrefix(src, ".") {
				if _, ok := compose.Volumes[src]; !ok {
					t.Errorf("%s: volume %s is not declared", name, src)
				}
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
				t.Errorf("%s: mounts %v", name, err)
			}
			mounts[name][target] = filepath.Join(dir, src)
		}
		for _, arg := range s.Command {
			if addr, ok := strings.CutPrefix(arg, "--web.listen-address="); ok {
				listens[addr[strings.LastIndex(addr, ":")+1:]] = true
			}
		}
		if p := s.Environment["GF_SERVER_HTTP_PORT"]; p != "" {
			listens[p] = true
		}
	}
	for _, p := range compose.Services["llmsim"].Ports {
		container := p[strings.LastIndex(p, ":")+1:]
		if !listens[container] {
			t.Errorf("port %s is published, but no service listens on %s", p, container)
		}
	}

	// configFile is the host file behind a service's --config.file.
	configFile := func(service string) string {
		for _, arg := range compose.Services[service].Command {
			if path, ok := strings.CutPrefix(arg, "--config.file="); ok {
				if src, ok := mounts[service][path]; ok {
					return src
				}
				t.Fatalf("%s: --config.file %s is not mounted", service, path)
			}
		}
		t.Fatalf("%s: no --config.file", service)
		return ""
	}
	promCfg := configFile("prometheus")
	var prom struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	testutil.ReadYAML(t, promCfg, &prom)
	var promCfgPath string
	for target, src := range mounts["prometheus"] {
		if src == promCfg {
			promCfgPath = target
		}
	}
	for _, rf := range prom.RuleFiles {
		inContainer := filepath.Clean(filepath.Join(filepath.Dir(promCfgPath), rf))
		found := false
		for target, src := range mounts["prometheus"] {
			if rel, err := filepath.Rel(target, inContainer); err == nil && !strings.HasPrefix(rel, "..") {
				if _, err := os.Stat(filepath.Join(src, rel)); err == nil {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("Prometheus's rule file %s (%s in the container) is in no mount", rf, inContainer)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "config", promCfg).CombinedOutput(); err != nil {
			t.Errorf("promtool check config %s: %v\n%s", promCfg, err, out)
		}
	}
	if amtool, err := exec.LookPath("amtool"); err == nil {
		amCfg := configFile("alertmanager")
		if out, err := exec.Command(amtool, "check-config", amCfg).CombinedOutput(); err != nil {
			t.Errorf("amtool check-config %s: %v\n%s", amCfg, err, out)
		}
	}
	if _, err := config.LoadFile(configFile("perfagent")); err != nil {
		t.Errorf("the agent's configuration: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
)

const kubeDir = "../../examples/kubernetes"

// kubeObjects decodes every manifest of the kustomization strictly with
// the upstream API types, so that a misspelt field fails, and returns them
// by kind.
func kubeObjects(t *testing.T) map[string]any {
	t.Helper()
	var k struct {
		Resources []string `json:"resources"`
	}
	readKube(t, "kustomization.yaml", &k, false)
	objs := map[string]any{}
	for _, f := range k.Resources {
		var meta struct{ Kind string }
		readKube(t, f, &meta, false)
		var obj any
		switch meta.Kind {
		case "Namespace":
			obj = &corev1.Namespace{}
		case "ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Secret":
			obj = &corev1.Secret{}
		case "PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "Service":
			obj = &corev1.Service{}
		case "ServiceMonitor":
			obj = &monitoringv1.ServiceMonitor{}
		case "PrometheusRule":
			obj = &monitoringv1.PrometheusRule{}
		default:
			t.Fatalf("%s: kind %q is not checked by this test; add it", f, meta.Kind)
		}
		readKube(t, f, obj, true)
		if _, dup := objs[meta.Kind]; dup {
			t.Fatalf("%s: a second %s; the test expects one of each", f, meta.Kind)
		}
		objs[meta.Kind] = obj
	}
	return objs
}

func readKube(t *testing.T, file string, v any, strict bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kubeDir, file))
	if err != nil {
		t.Fatal(err)
	}
	if strict {
		err = yaml.UnmarshalStrict(b, v)
	} else {
		err = yaml.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestKubernetesManifests checks the kustomize base: every manifest decodes
// strictly; the Deployment runs as the restricted Pod Security Standard
// asks, probes /-/healthy and /-/ready, and mounts the configuration, the
// secrets and the storage where its flags say; the configuration and web
// configuration pass the agent's checks; the ServiceMonitor scrapes the
// Service's port with honor_labels; the PrometheusRule's groups pass
// promtool; kubectl kustomize builds the base where kubectl is installed.
func TestKubernetesManifests(t *testing.T) {
	objs := kubeObjects(t)
	dep := objs["Deployment"].(*appsv1.Deployment)
	cm := objs["ConfigMap"].(*corev1.ConfigMap)
	secret := objs["Secret"].(*corev1.Secret)
	svc := objs["Service"].(*corev1.Service)
	sm := objs["ServiceMonitor"].(*monitoringv1.ServiceMonitor)
	rule := objs["PrometheusRule"].(*monitoringv1.PrometheusRule)

	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("the pod does not meet the restricted profile: pod %+v, container %+v", psc, sc)
	}
	if *dep.Spec.Replicas != 1 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Error("one agent at a time: replicas 1 and the Recreate strategy (the workflow store takes one writer)")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/-/ready" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/-/healthy" {
		t.Error("probes must be /-/ready (readiness) and /-/healthy (liveness)")
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("the container needs memory requests and limits")
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8002 {
		t.Errorf("ports %+v, want 8002", c.Ports)
	}

	// Every file a flag names is mounted, from the ConfigMap, the Secret or
	// the claim.
	mountOf := func(path string) (corev1.Volume, string) {
		for _, m := range c.VolumeMounts {
			if rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/"); ok || path == m.MountPath {
				for _, v := range pod.Volumes {
					if v.Name == m.Name {
						return v, rel
					}
				}
			}
		}
		t.Fatalf("%s is on no volume", path)
		return corev1.Volume{}, ""
	}
	flags := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[k] = v
	}
	dir := t.TempDir()
	if v, key := mountOf(flags["config.file"]); v.ConfigMap == nil || v.ConfigMap.Name != cm.Name || cm.Data[key] == "" {
		t.Errorf("--config.file %s is not the ConfigMap's %s", flags["config.file"], key)
	} else if cfg, err := config.Load([]byte(cm.Data[key]), flags["config.file"]); err != nil {
		t.Errorf("the ConfigMap's configuration: %v", err)
	} else if w := cfg.Workflow.Webhook; w != nil {
		if sv, skey := mountOf(w.SecretFile); sv.Secret == nil || sv.Secret.SecretName != secret.Name || secret.StringData[skey] == "" {
			t.Errorf("workflow.webhook.secret_file %s is not a key of the Secret", w.SecretFile)
		}
	}
	if v, key := mountOf(flags["web.config.file"]); v.Secret == nil || v.Secret.SecretName != secret.Name || secret.StringData[key] == "" {
		t.Errorf("--web.config.file %s is not the Secret's %s", flags["web.config.file"], key)
	} else {
		webCfg := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(webCfg, []byte(secret.StringData[key]), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := toolkitweb.Validate(webCfg); err != nil {
			t.Errorf("the Secret's web configuration: %v", err)
		}
	}
	if v, _ := mountOf(flags["storage.path"]); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != objs["PersistentVolumeClaim"].(*corev1.PersistentVolumeClaim).Name {
		t.Errorf("--storage.path %s is not on the claim", flags["storage.path"])
	}

	// The ServiceMonitor finds the Service and scrapes its port, with the
	// Secret's scrape user, keeping the signals' labels.
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, which the Service does not carry", k, v)
		}
	}
	if len(sm.Spec.Endpoints) != 1 || len(svc.Spec.Ports) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name ||
		!sm.Spec.Endpoints[0].HonorLabels {
		t.Errorf("the ServiceMonitor must scrape the Service's port %q with honorLabels", svc.Spec.Ports[0].Name)
	}
	if ba := sm.Spec.Endpoints[0].BasicAuth; ba == nil || ba.Username.Name != secret.Name || secret.StringData[ba.Username.Key] == "" || secret.StringData[ba.Password.Key] == "" {
		t.Error("the ServiceMonitor's basic auth must come from the Secret: /metrics asks for it")
	}

	// promtool checks the PrometheusRule's groups as a rule file.
	groups, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		rules := filepath.Join(dir, "rules.yml")
		if err := os.WriteFile(rules, groups, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules on the PrometheusRule: %v\n%s", err, out)
		}
	}
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		if out, err := exec.Command(kubectl, "kustomize", kubeDir).CombinedOutput(); err != nil {
			t.Errorf("kubectl kustomize: %v\n%s", err, out)
		} else if !bytes.Contains(out, []byte("image: perfagent:")) {
			t.Error("kustomize does not set the image's tag")
		}
	} else {
		t.Log("kubectl is not installed: kustomize build skipped")
	}
}

// TestKubernetesExtras checks the examples beside the base: the engines'
// PodMonitor decodes strictly, and the Thanos/Mimir configuration loads and
// sends its tenant header and bearer token from the file it names.
func TestKubernetesExtras(t *testing.T) {
	readKube(t, "extras/podmonitor-engines.yaml", &monitoringv1.PodMonitor{}, true)

	cfg, err := config.LoadFile(filepath.Join(kubeDir, "extras/perfagent-thanos.yml"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Source.Prometheus
	token := filepath.Join(t.TempDir(), "source-token")
	if err := os.WriteFile(token, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.HTTPClientConfig.Authorization.CredentialsFile = token
	seen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r.Header.Get("X-Scope-OrgID") + " " + r.Header.Get("Authorization"):
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	defer srv.Close()
	p.URL = config.URL(srv.URL)
	src, err := collector.NewRemoteSource(*p, collector.NewMetrics(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := src.Query(ctx, "up", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != "llm-fleet Bearer s3cret-token" {
		t.Errorf("the source sent %q, want the tenant and the token", got)
	}
}

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// identity is who a request of the auth matrix claims to be.
type identity struct {
	name, user, password string
	// crossSite sends the headers a browser adds to a request from a page
	// of another site.
	crossSite bool
}

var (
	noAuth        = identity{name: "no auth"}
	wrongPassword = identity{name: "wrong password", user: "bob", password: "not-pw"}
	nonApprover   = identity{name: "non-approver", user: "mallory", password: "pw"}
	requester     = identity{name: "requester", user: "alice", password: "pw"}
	approver      = identity{name: "approver", user: "bob", password: "pw"}
	crossSite     = identity{name: "approver from another site", user: "bob", password: "pw", crossSite: true}
	// matrixIdentities are in the order the matrix sends them: a route
	// whose allowed call changes the workflow sees the refusals first.
	matrixIdentities = []identity{noAuth, wrongPassword, crossSite, nonApprover, requester, approver}
)

// TestFaultAuthMatrix walks every route of the API, as its OpenAPI
// description lists them, and the lifecycle endpoints, with every
// identity, and checks each answer. The web configuration has basic auth
// users, so the web server refuses a request without the right password
// (401) before any handler runs; past it, a workflow's decisions are for
// approvers (workflow.approvers) other than its requester (403 otherwise),
// abort and rollback for approvers and the requester, resolving an
// instance for approvers only, and any change requested by a page of
// another site is refused (403). A mutating route missing from the table
// fails the test, so a new route cannot be forgotten.
func TestFaultAuthMatrix(t *testing.T) {
	sim := startSimFleet(t, "matrix-secret", 2)
	cfg, webCfg := rolloutFiles(t, sim, sim.webhook.URL, "matrix-secret", "", "warmup: 1s\n  window: 5s", "alice", "bob", "mallory")
	a := startAgent(t, cfg, func(f *daemonFlags) { f.webConfigFile = webCfg; f.enableLifecycle = true })
	waitFor(t, "a recommendation", func() bool {
		code, body := do(t, "GET", a.url+"/api/v1/recommendations?id=raise_gpu_memory_utilization", "alice", "")
		return code == 200 && strings.Count(body, `"proposed"`) >= 2
	})
	inst := sim.addrs[0]
	code, created := do(t, "POST", a.url+"/api/v1/workflows", "alice", fmt.Sprintf(`{"recommendation":"raise_gpu_memory_utilization","instance":%q,"instances":[%q]}`, inst, inst))
	var w struct {
		Data struct {
			ID string `json:"id"`
		}
	}
	if code != http.StatusOK || json.Unmarshal([]byte(created), &w) != nil {
		t.Fatalf("create = %d %s", code, created)
	}

	// What each identity past the password gets: the refusals are 403; the
	// allowed calls get the handler's answer, chosen so that it is
	// deterministic: decisions carry a wrong proposal hash (409, the
	// workflow stays open), resolving needs a failed rollback (409), a
	// rollback needs a started workflow (409), a proposal names an
	// unknown recommendation (404), and the abort by the requester, sent
	// after every other route, ends the workflow (the approver's then 409).
	type answers map[string]int // identity name → status
	mutating := map[string]struct {
		body string
		want answers
	}{
		"POST /metrics/collect":                             {`{}`, answers{"non-approver": 200, "requester": 200, "approver": 200, "approver from another site": 200}},
		"POST /analysis/detect-bottlenecks":                 {`{}`, answers{"non-approver": 200, "requester": 200, "approver": 200, "approver from another site": 200}},
		"POST /optimization/recommend":                      {`{}`, answers{"non-approver": 200, "requester": 200, "approver": 200, "approver from another site": 200}},
		"POST /workflows":                                   {`{"recommendation":"nope"}`, answers{"non-approver": 404, "requester": 404, "approver": 404, "approver from another site": 403}},
		"POST /workflows/{id}/approve":                      {`{"proposal_hash":"wrong"}`, answers{"non-approver": 403, "requester": 403, "approver": 409, "approver from another site": 403}},
		"POST /workflows/{id}/reject":                       {`{"proposal_hash":"wrong"}`, answers{"non-approver": 403, "requester": 403, "approver": 409, "approver from another site": 403}},
		"POST /workflows/{id}/rollback":                     {`{"reason":"matrix"}`, answers{"non-approver": 403, "requester": 409, "approver": 409, "approver from another site": 403}},
		"POST /workflows/{id}/instances/{instance}/resolve": {`{"reason":"matrix"}`, answers{"non-approver": 403, "requester": 403, "approver": 409, "approver from another site": 403}},
		"POST /workflows/{id}/abort":                        {`{"reason":"matrix"}`, answers{"non-approver": 403, "requester": 200, "approver": 409, "approver from another site": 403}},
	}

	_, doc := do(t, "GET", a.url+"/api/v1/openapi.json", "alice", "")
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(doc), &spec); err != nil || len(spec.Paths) == 0 {
		t.Fatalf("openapi.json: %v\n%.300s", err, doc)
	}
	type call struct{ method, path string }
	var calls []call
	for path, ops := range spec.Paths {
		for method := range ops {
			calls = append(calls, call{strings.ToUpper(method), path})
		}
	}
	// The abort that ends the workflow goes last.
	sort.Slice(calls, func(i, j int) bool {
		ki, kj := calls[i].method+" "+calls[i].path, calls[j].method+" "+calls[j].path
		if ai, aj := strings.HasSuffix(ki, "/abort"), strings.HasSuffix(kj, "/abort"); ai != aj {
			return aj
		}
		return ki < kj
	})

	checked, wrong := 0, 0
	check := func(method, path, url, body string, id identity, want int) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if id.user != "" {
			req.SetBasicAuth(id.user, id.password)
		}
		if id.crossSite {
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			req.Header.Set("Origin", "https://evil.example")
		}
		checked++
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			wrong++
			t.Errorf("%s %s as %s: %v", method, path, id.name, err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			wrong++
			t.Errorf("%s %s as %s = %d, want %d", method, path, id.name, resp.StatusCode, want)
		}
	}
	seenMutating := map[string]bool{}
	for _, c := range calls {
		key := c.method + " " + c.path
		url := a.url + "/api/v1" + strings.NewReplacer("{id}", w.Data.ID, "{instance}", inst).Replace(c.path)
		m, isMutating := mutating[key]
		if c.method != http.MethodGet && !isMutating {
			t.Errorf("%s changes state or computes on request and is not in the auth matrix's table: add what each identity must get", key)
			continue
		}
		seenMutating[key] = isMutating
		for _, id := range matrixIdentities {
			want := http.StatusOK
			switch {
			case id.user == "" || id.password != "pw":
				want = http.StatusUnauthorized
			case isMutating:
				want = m.want[id.name]
			}
			if want == 0 {
				t.Fatalf("the table has no answer for %s as %s", key, id.name)
			}
			check(c.method, c.path, url, m.body, id, want)
		}
	}
	for key := range mutating {
		if !seenMutating[key] {
			t.Errorf("%s is in the auth matrix's table but not in the API's OpenAPI description", key)
		}
	}

	// The lifecycle endpoints, enabled: the password is what guards them,
	// as in Prometheus. /-/quit ends the agent, so its allowed call is last.
	for _, id := range matrixIdentities {
		want := http.StatusOK
		if id.user == "" || id.password != "pw" {
			want = http.StatusUnauthorized
		}
		check(http.MethodPost, "/-/reload", a.url+"/-/reload", "", id, want)
	}
	for _, id := range []identity{noAuth, wrongPassword} {
		check(http.MethodPost, "/-/quit", a.url+"/-/quit", "", id, http.StatusUnauthorized)
	}
	check(http.MethodPost, "/-/quit", a.url+"/-/quit", "", nonApprover, http.StatusOK)
	if code := a.stop(); code != exitSuccess {
		t.Errorf("the agent exited %d after /-/quit", code)
	}
	if !slices.ContainsFunc(calls, func(c call) bool { return c.path == "/workflows/{id}/approve" }) {
		t.Error("the OpenAPI description lacks the workflow routes")
	}
	figure(t, "Auth matrix", "routes × identities checked: %d, wrong answers %d", checked, wrong)
}

// selfSignedCert writes an ECDSA certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool that trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "perfagent test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestFaultTLSEndToEnd serves the agent with TLS and basic auth from its
// web configuration and a certificate made here: a client that trusts the
// certificate is answered, with and without a password as the routes
// want; plain HTTP and a client that does not trust it are not.
func TestFaultTLSEndToEnd(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webCfg, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  alice: %s\n", certFile, keyFile, hash), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, fastConfig(vllmServer(t, "m").URL), func(f *daemonFlags) { f.webConfigFile = webCfg })
	secure := "https://" + strings.TrimPrefix(a.url, "http://")
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(c *http.Client, url, user string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, "pw")
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	waitFor(t, "/api/v1/health over TLS", func() bool {
		code, _, err := call(trusting, secure+"/api/v1/health", "alice")
		return err == nil && code == http.StatusOK
	})
	waitFor(t, "an instance over TLS", func() bool {
		code, body, err := call(trusting, secure+"/api/v1/instances", "alice")
		return err == nil && code == http.StatusOK && strings.Contains(body, `"vllm"`)
	})
	if code, _, err := call(trusting, secure+"/api/v1/health", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("over TLS without a password = %d %v, want 401", code, err)
	}
	if code, body, err := call(&http.Client{Timeout: 10 * time.Second}, a.url+"/api/v1/health", "alice"); err == nil && code == http.StatusOK {
		t.Errorf("plain HTTP was answered: %d %.200s", code, body)
	}
	_, _, err = call(&http.Client{Timeout: 10 * time.Second}, secure+"/api/v1/health", "alice")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a client that does not trust the certificate: %v, want an unknown authority", err)
	}
	state, _, err := tlsVersion(trusting, secure+"/-/healthy")
	if err != nil || state < tls.VersionTLS12 {
		t.Errorf("TLS version %x (%v), want 1.2 or later", state, err)
	}
	figure(t, "TLS", "trusted client answered over %s with basic auth, plain HTTP and an untrusting client refused", tls.VersionName(state))
}

// tlsVersion returns the TLS version a GET of url was answered with.
func tlsVersion(c *http.Client, url string) (uint16, int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.TLS == nil {
		return 0, resp.StatusCode, errors.New("answered without TLS")
	}
	return resp.TLS.Version, resp.StatusCode, nil
}

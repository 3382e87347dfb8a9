package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The authenticated user follows the web configuration as it is now: once
// basic_auth_users is removed, the web server no longer checks passwords,
// and a basic-auth header proves nothing.
func TestWebAuthFollowsTheFile(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "web.yml")
	withUsers := "basic_auth_users:\n  alice: " + string(hash) + "\n"
	auth := newWebAuth(file)
	// Each step rewrites the file (when content is set) with a new
	// modification time, then makes requests.
	steps := []struct {
		name    string
		content string
		remove  bool
		user    string
		pass    string
		noAuth  bool
		want    string
	}{
		{name: "listed user, right password", content: withUsers, user: "alice", pass: "secret", want: "alice"},
		{name: "listed user again, from the cache", user: "alice", pass: "secret", want: "alice"},
		{name: "wrong password", user: "alice", pass: "guess"},
		{name: "unlisted user", user: "mallory", pass: "secret"},
		{name: "no header", noAuth: true},
		{name: "users removed", content: "# no users\n", user: "alice", pass: "secret"},
		{name: "users back", content: withUsers, user: "alice", pass: "secret", want: "alice"},
		{name: "file gone", remove: true, user: "alice", pass: "secret"},
		{name: "file not YAML", content: "basic_auth_users: [\n", user: "alice", pass: "secret"},
	}
	mtime := time.Now().Add(-time.Hour)
	for _, s := range steps {
		switch {
		case s.remove:
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
		case s.content != "":
			if err := os.WriteFile(file, []byte(s.content), 0o600); err != nil {
				t.Fatal(err)
			}
			// Distinct modification times even on coarse clocks.
			mtime = mtime.Add(time.Second)
			if err := os.Chtimes(file, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		r := httptest.NewRequest("POST", "/api/v1/workflows/x/approve", nil)
		if !s.noAuth {
			r.SetBasicAuth(s.user, s.pass)
		}
		u, ok := auth.authenticated(r)
		if ok != (s.want != "") || u != s.want {
			t.Errorf("%s: authenticated = %q, %v; want %q", s.name, u, ok, s.want)
		}
	}
}

// The file is parsed again only when its modification time or size
// changes: a rewrite that keeps both is not seen, one that moves the time
// is.
func TestWebAuthParsesOncePerVersion(t *testing.T) {
	file := filepath.Join(t.TempDir(), "web.yml")
	mtime := time.Now().Add(-time.Hour)
	write := func(password string, mtime time.Time) {
		t.Helper()
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte("basic_auth_users:\n  alice: "+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	auth := newWebAuth(file)
	as := func(password string) bool {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth("alice", password)
		_, ok := auth.authenticated(r)
		return ok
	}
	write("secret", mtime)
	if !as("secret") {
		t.Fatal("alice not authenticated")
	}
	// Same size (bcrypt hashes have one length), same time: the cached
	// users stand.
	write("other", mtime)
	if !as("secret") || as("other") {
		t.Error("the file was parsed again although its time and size did not change")
	}
	write("other", mtime.Add(time.Second))
	if as("secret") || !as("other") {
		t.Error("the file was not parsed again after its modification time changed")
	}
}

package main

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// maxVerified bounds the remembered credentials; past it they are
// forgotten and checked again.
const maxVerified = 1024

// webAuth decides per request who made it, following --web.config.file
// as the web server re-reads it on every request: a user is
// authenticated only while the file lists basic_auth_users, that user
// among them, with the password the request carries.
type webAuth struct {
	file string

	mtx     sync.Mutex
	modTime time.Time
	size    int64
	read    bool
	users   map[string]string // user → bcrypt hash
	// verified holds digests of credentials that matched users.
	verified map[[sha256.Size]byte]bool
}

func newWebAuth(file string) *webAuth {
	return &webAuth{file: file}
}

// authenticated returns the user r is authenticated as. The web server
// has checked the password before the handler runs whenever the file has
// users; checking it again here (once per credential and version of the
// file) closes the gap where users are added between its read of the
// file and this one.
func (w *webAuth) authenticated(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" {
		return "", false
	}
	w.mtx.Lock()
	defer w.mtx.Unlock()
	if err := w.refresh(); err != nil {
		return "", false
	}
	hash, ok := w.users[user]
	if !ok {
		return "", false
	}
	key := sha256.Sum256([]byte(fmt.Sprintf("%d:%s\x00%s\x00%s", len(user), user, hash, pass)))
	if w.verified[key] {
		return user, true
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) != nil {
		return "", false
	}
	if len(w.verified) >= maxVerified {
		clear(w.verified)
	}
	w.verified[key] = true
	return user, true
}

// refresh parses the file again when its modification time or size
// changed since the last read. On error nobody is authenticated.
func (w *webAuth) refresh() error {
	fi, err := os.Stat(w.file)
	if err != nil {
		w.read, w.users = false, nil
		return err
	}
	if w.read && fi.ModTime().Equal(w.modTime) && fi.Size() == w.size {
		return nil
	}
	w.read, w.users, w.verified = false, nil, map[[sha256.Size]byte]bool{}
	b, err := os.ReadFile(w.file)
	if err != nil {
		return err
	}
	var cfg struct {
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("reading %s: %w", w.file, err)
	}
	w.modTime, w.size, w.read, w.users = fi.ModTime(), fi.Size(), true, cfg.Users
	return nil
}

package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// URL is a URL from the configuration file that may carry a password
// (http://user:secret@host/). Printing it, with fmt or in logs, and
// marshalling it to YAML or JSON show the password as "xxxxx"; only Raw
// gives the URL to connect with.
type URL string

// Raw is the URL as written, password included: for connecting only.
func (u URL) Raw() string { return string(u) }

// String is the URL with its password hidden.
func (u URL) String() string {
	p, err := url.Parse(string(u))
	if err != nil {
		// A URL that does not parse cannot be redacted piecewise, and
		// any part of it could be a credential.
		return "(a URL that does not parse, hidden)"
	}
	return p.Redacted()
}

// MarshalYAML writes the URL with its password hidden.
func (u URL) MarshalYAML() (any, error) { return u.String(), nil }

// MarshalJSON writes the URL with its password hidden.
func (u URL) MarshalJSON() ([]byte, error) { return json.Marshal(u.String()) }

// CheckHTTPURL checks that raw is an absolute http(s) URL; its messages
// show the URL with any password hidden.
func CheckHTTPURL(raw URL) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw.Raw())
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must start with http:// or https://", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

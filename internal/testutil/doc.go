// Package testutil holds the helpers that tests of several packages share:
// free loopback ports, Debian's Alertmanager and promtool run as real
// components, and the text exposition of a registry. Only tests import it.
package testutil

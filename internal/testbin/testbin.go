// Package testbin decides what a test does when a real program it drives
// (Debian's slapd, sshd, ldapsearch, ssh, sftp, sshpass, openssl) is not
// installed: skip with the package to install, or, in CI, where
// RUNBOOK_REQUIRE_SERVERS=1 and every such program is installed, fail.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Required reports whether a missing program fails tests instead of
// skipping them (RUNBOOK_REQUIRE_SERVERS=1, as .ci/run sets it).
func Required() bool { return os.Getenv("RUNBOOK_REQUIRE_SERVERS") == "1" }

// Need returns the path of the program name (a name looked up in PATH or a
// path), or skips the test, or fails it when Required, saying which Debian
// package provides it.
func Need(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, fmt.Sprintf("%s is missing (apt-get install %s): %v", name, debianPackage, err))
	}
	return path
}

// Unavailable skips the test, or fails it when Required, because a real
// server or client it needs cannot run here for the reason given. An empty
// reason means it can, and Unavailable does nothing.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if reason == "" {
		return
	}
	if Required() {
		t.Fatalf("%s (RUNBOOK_REQUIRE_SERVERS=1, so this is a failure)", reason)
	}
	t.Skip(reason)
}

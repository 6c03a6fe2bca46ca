package target

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// PinKind names what a pin pins.
type PinKind string

const (
	// PinTLS is the SHA-256 thumbprint of the node's TLS certificate
	// (profile key tls_thumbprint).
	PinTLS PinKind = "tls"
	// PinSSH is the SHA-256 fingerprint of the node's SSH host key
	// (profile key ssh.host_key).
	PinSSH PinKind = "ssh"
)

// PinError is returned when a server's certificate or host key does not match
// the profile's pin, or when there is no pin to check it against.
type PinError struct {
	// Node is the node's PNID.
	Node string
	// Kind says whether a TLS certificate or an SSH host key was checked.
	Kind PinKind
	// Pinned is the pin from the profile; empty when there is none.
	Pinned string
	// Presented is what the server presented, in the profile's format.
	Presented string
}

// Error says what was presented and pinned, and what to do about it.
func (e *PinError) Error() string {
	switch {
	case e.Kind == PinTLS && e.Pinned == "":
		return fmt.Sprintf("node %s: no tls_thumbprint pinned; the server presents SHA-256 %s — add it to the profile if it is right", e.Node, e.Presented)
	case e.Kind == PinTLS:
		return fmt.Sprintf("node %s: the server presents a certificate with SHA-256 %s, but the profile pins tls_thumbprint %s; refusing to connect (if the certificate was replaced on purpose, check the new one and update the profile)", e.Node, e.Presented, e.Pinned)
	case e.Pinned == "":
		return fmt.Sprintf("node %s: no ssh host_key pinned; the server presents %s — add it to the profile if it is right", e.Node, e.Presented)
	}
	return fmt.Sprintf("node %s: the server presents SSH host key %s, but the profile pins host_key %s; refusing to connect (if the host key was changed on purpose, check the new one and update the profile)", e.Node, e.Presented, e.Pinned)
}

// Thumbprint returns the SHA-256 thumbprint of a certificate in the format
// profiles use: upper-case hex bytes separated by colons.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return formatThumbprint(sum[:])
}

func formatThumbprint(sum []byte) string {
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// parseThumbprint accepts a SHA-256 thumbprint as colon-separated or plain
// hex, in any case, and returns it in the format Thumbprint prints.
func parseThumbprint(s string) (string, error) {
	s = strings.TrimSpace(s)
	plain := strings.ReplaceAll(s, ":", "")
	if strings.Contains(s, ":") {
		for i, part := range strings.Split(s, ":") {
			if len(part) != 2 {
				return "", fmt.Errorf("%q is not a thumbprint: byte %d is %q, not two hex digits", s, i+1, part)
			}
		}
	}
	sum, err := hex.DecodeString(plain)
	if err != nil {
		return "", fmt.Errorf("%q is not a thumbprint: want hex digits, with or without colons", s)
	}
	switch len(sum) {
	case sha256.Size:
		return formatThumbprint(sum), nil
	case 20:
		return "", fmt.Errorf("%q looks like a SHA-1 thumbprint; pin the SHA-256 one (openssl x509 -noout -fingerprint -sha256)", s)
	}
	return "", fmt.Errorf("%q is not a SHA-256 thumbprint: it has %d bytes, not 32", s, len(sum))
}

// parseHostKey accepts an SSH host key fingerprint as "SHA256:" followed by
// base64 (padded or not) and returns it as ssh.FingerprintSHA256 prints it.
func parseHostKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	b64, ok := strings.CutPrefix(s, "SHA256:")
	if !ok {
		return "", fmt.Errorf("%q is not an SSH host key fingerprint: want SHA256:… as ssh-keygen -l -E sha256 prints it", s)
	}
	sum, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil || len(sum) != sha256.Size {
		return "", fmt.Errorf("%q is not an SSH host key fingerprint: want SHA256: and 43 base64 characters", s)
	}
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum), nil
}

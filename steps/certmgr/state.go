package certmgr

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"runbook/internal/runfile"

	"runbook/engine"
	"runbook/steps/certinfo"
)

// object is a certificate certificate-manager replaces: a VECS entry, or
// the VMCA root file.
type object struct {
	Store string `json:"store,omitempty"`
	Alias string `json:"alias,omitempty"`
	File  string `json:"file,omitempty"`
}

// String names the object as plans and outputs show it.
func (o object) String() string {
	if o.File != "" {
		return o.File
	}
	return o.Store + "/" + o.Alias
}

// certState is an object's certificate at one time.
type certState struct {
	object
	SHA1     string    `json:"sha1"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
	// CertFile and KeyFile are the backup's copies, relative to the
	// backup folder; empty in a state that is no backup.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
}

func describe(o object, c *x509.Certificate, now time.Time) certState {
	info := certinfo.Describe(c, now)
	return certState{object: o, SHA1: info.SHA1, Subject: info.Subject, NotAfter: c.NotAfter}
}

// text describes a certificate for a plan.
func (s certState) text(now time.Time) string {
	t := fmt.Sprintf("%s, sha1 %s, notAfter %s", s.Subject, s.SHA1, s.NotAfter.UTC().Format(time.DateOnly))
	if now.After(s.NotAfter) {
		t += " (EXPIRED)"
	}
	return t
}

// beforeState is what the certificates an option replaces were before it
// ran: the backup's manifest, and what Check compares with.
type beforeState struct {
	Node   string      `json:"node"`
	Option string      `json:"option"`
	Taken  time.Time   `json:"taken"`
	Certs  []certState `json:"certs"`
	// TrustedRoots are TRUSTED_ROOTS' entries (option 8 only), saved
	// because the new root is added to them.
	TrustedRoots []certState `json:"trustedRoots,omitempty"`
	// RootFile is the copy of the VMCA root file (option 8 on a node that
	// runs VMCA), relative to the backup folder.
	RootFile string `json:"rootFile,omitempty"`
	// RootKeyFile is the copy of the VMCA root's private key
	// (/var/lib/vmware/vmca/privatekey.pem, mode 0600), relative to the
	// backup folder: Restore needs it to make the old root VMCA's again.
	RootKeyFile string `json:"rootKeyFile,omitempty"`
	// RootPrevious are the previous-generation root files option 8
	// overwrites (root.cer.0 and privatekey.pem.0), as they were.
	RootPrevious []fileState `json:"rootPrevious,omitempty"`
	// TrustedRootCRLs are the aliases TRUSTED_ROOT_CRLS held (option 8):
	// Restore deletes the CRLs published since. Nil when not recorded.
	TrustedRootCRLs []string `json:"trustedRootCRLs,omitempty"`
}

// fileState is a file of the node as it was: its copy, or its absence.
type fileState struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	// Mode is its permission bits in octal, such as "0600".
	Mode string `json:"mode,omitempty"`
	// File is the copy, relative to the backup folder.
	File string `json:"file,omitempty"`
}

// manifestFile is the before-state's name, in the backup folder and in
// the step's folder of the run folder.
const manifestFile = "before.json"

// stateDir is where the step keeps the before-state of its first
// backup in the run folder: Check reads it on resume, when the engine
// gives it no backup folder.
func stateDir(env *engine.Env) string {
	return filepath.Join(env.RunDir, "certmgr", safeName(env.StepID))
}

// saveBefore writes the before-state into the backup folder (when there
// is one) and, unless an earlier attempt of the step saved one, into the
// run folder. It returns the files it wrote.
func saveBefore(env *engine.Env, st *beforeState) ([]string, error) {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode before-state: %w", err)
	}
	data = append(data, '\n')
	if env.Redact != nil {
		data = []byte(env.Redact(string(data)))
	}
	var files []string
	if env.BackupDir != "" {
		p := filepath.Join(env.BackupDir, manifestFile)
		if err := runfile.Write(p, data, 0o600); err != nil {
			return nil, err
		}
		files = append(files, p)
	}
	if env.RunDir != "" {
		dir := stateDir(env)
		p := filepath.Join(dir, manifestFile)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("save before-state: %w", err)
			}
			if err := runfile.Write(p, data, 0o600); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// loadBefore reads the before-state: the run folder's (the first
// attempt's, the state before the step ever ran), else the backup
// folder's. It reports false when neither was saved.
func loadBefore(env *engine.Env, node, option string) (*beforeState, bool, error) {
	var paths []string
	if env.RunDir != "" {
		paths = append(paths, filepath.Join(stateDir(env), manifestFile))
	}
	if env.BackupDir != "" {
		paths = append(paths, filepath.Join(env.BackupDir, manifestFile))
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("read before-state: %w", err)
		}
		var st beforeState
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, false, fmt.Errorf("read before-state %s: %w", p, err)
		}
		if !strings.EqualFold(st.Node, node) || st.Option != option {
			return nil, false, fmt.Errorf("before-state %s is of option %s on %s, not option %s on %s", p, st.Option, st.Node, option, node)
		}
		return &st, true, nil
	}
	return nil, false, nil
}

// safeName turns s into a file name: letters, digits, '.', '-' and '_'
// are kept, anything else becomes '_'.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
	s = strings.TrimLeft(s, ".")
	if s == "" {
		return "_"
	}
	return s
}

// readAll reads the current certificates of objs.
func (j *job) readAll(ctx context.Context, objs []object, now time.Time) ([]certState, error) {
	out := make([]certState, 0, len(objs))
	for _, o := range objs {
		c, _, err := j.read(ctx, o)
		if err != nil {
			return nil, err
		}
		out = append(out, describe(o, c, now))
	}
	return out, nil
}

// read returns an object's current certificate and its PEM text.
func (j *job) read(ctx context.Context, o object) (*x509.Certificate, string, error) {
	if o.File != "" {
		data, err := readRemote(ctx, j.n, o.File)
		if err != nil {
			return nil, "", err
		}
		certs, err := certinfo.Decode(string(data))
		if err != nil {
			return nil, "", fmt.Errorf("read %s on %s: %w", o.File, j.n.PNID(), err)
		}
		return certs[0], string(data), nil
	}
	return j.vecs.cert(ctx, o.Store, o.Alias)
}

// decodeFirst returns the first certificate of a PEM text.
func decodeFirst(text string) (*x509.Certificate, error) {
	certs, err := certinfo.Decode(text)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

package vecs

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"runbook/internal/runfile"

	"runbook/engine"
	"runbook/steps/certinfo"
	"runbook/steps/conn"
	"runbook/steps/shell"
)

// exportParams are the params of vecs.export.
type exportParams struct {
	Node    string `yaml:"node" doc:"The PNID of the node whose VECS to read; the target's first node when empty."`
	Store   string `yaml:"store" required:"true" doc:"The store, such as MACHINE_SSL_CERT or BACKUP_STORE."`
	Alias   string `yaml:"alias" required:"true" doc:"The entry's alias, such as __MACHINE_CERT or bkp___MACHINE_CERT."`
	WithKey bool   `yaml:"with_key" default:"true" doc:"Also save the entry's private key, when it has one (a Private Key entry; Trusted Cert entries have none)."`
}

// exportOutputs are the outputs of vecs.export. The key itself never is.
type exportOutputs struct {
	// CertFile is the absolute path of the saved certificate (PEM, the
	// entry's chain as vecs-cli hands it out):
	// <run folder>/exports/<store>__<alias>.crt.
	CertFile string `json:"cert_file" expr:"cert_file"`
	// KeyFile is the absolute path of the saved private key (PEM, mode
	// 0600), <store>__<alias>.key; empty when no key was saved.
	KeyFile string `json:"key_file" expr:"key_file"`
	// SHA1 is the certificate's SHA-1 thumbprint, AB:CD:… as openssl
	// prints it (what ls_update_certs.py takes, KB 2121701 Task 2).
	SHA1 string `json:"sha1" expr:"sha1"`
	// NotAfter is the end of the certificate's validity.
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
}

var exportStep = engine.Read[exportParams, exportOutputs]{
	Spec: engine.Spec{
		ID:      "vecs.export",
		Summary: "Save a VECS entry's certificate and private key into the run folder (vecs-cli entry getcert/getkey).",
		Doc: "Reads the entry with `vecs-cli entry getcert` and, for a Private Key entry when `with_key` " +
			"is true, `vecs-cli entry getkey`, from their standard output (no file is left on the " +
			"appliance), and writes them into the run folder's `exports/` as " +
			"`<store>__<alias>.crt` and `<store>__<alias>.key` (readable by the owner only). The key " +
			"must match the certificate. Outputs are the files' paths, the certificate's SHA-1 " +
			"thumbprint and validity end; the key never appears in outputs, plans or logs.\n\n" +
			"```yaml\n- id: old\n  uses: vecs.export\n  with:\n    store: BACKUP_STORE\n" +
			"    alias: bkp___MACHINE_CERT\n    with_key: false\n```",
	},
	Run: runExport,
}

func runExport(ctx context.Context, env *engine.Env, p *exportParams) (exportOutputs, error) {
	if p.Store == "" || p.Alias == "" {
		return exportOutputs{}, errors.New("store and alias: both are required")
	}
	if env.RunDir == "" {
		return exportOutputs{}, errors.New("the run has no run folder to export into")
	}
	n, err := conn.Node(env, p.Node)
	if err != nil {
		return exportOutputs{}, err
	}
	opts := " --store " + shell.Quote(p.Store) + " --alias " + shell.Quote(p.Alias)
	where := fmt.Sprintf("%s: %s/%s", n.PNID(), p.Store, p.Alias)

	// The entry's type says whether it has a key.
	res, err := shell.Must(ctx, env, n, "vecs-cli entry list --store "+p.Store, vecsCLI("entry list --store "+shell.Quote(p.Store)), "")
	if err != nil {
		return exportOutputs{}, err
	}
	entries, err := ParseEntryList(res.Stdout)
	if err != nil {
		return exportOutputs{}, fmt.Errorf("%s: vecs-cli entry list --store %s: %w", n.PNID(), p.Store, err)
	}
	i := slices.IndexFunc(entries, func(e ListedEntry) bool { return e.Alias == p.Alias })
	if i < 0 {
		aliases := make([]string, len(entries))
		for j, e := range entries {
			aliases[j] = e.Alias
		}
		return exportOutputs{}, fmt.Errorf("%s: store %s has no entry %s (it has: %s)", n.PNID(), p.Store, p.Alias, strings.Join(aliases, ", "))
	}
	typ := entries[i].Type
	if !isCertType(typ) {
		return exportOutputs{}, fmt.Errorf("%s is a %s entry, not a certificate", where, typ)
	}

	res, err = shell.Must(ctx, env, n, "vecs-cli entry getcert", vecsCLI("entry getcert"+opts), "")
	if err != nil {
		return exportOutputs{}, err
	}
	certPEM := strings.TrimSpace(res.Stdout)
	certs, err := certinfo.Decode(certPEM)
	if err != nil || len(certs) == 0 || !strings.Contains(certPEM, "-----BEGIN CERTIFICATE-----") {
		return exportOutputs{}, fmt.Errorf("%s: vecs-cli entry getcert printed no PEM certificate", where)
	}
	base := filepath.Join(env.RunDir, "exports", fileName(p.Store)+"__"+fileName(p.Alias))
	out := exportOutputs{
		CertFile: base + ".crt",
		SHA1:     certinfo.Thumbprint(certs[0].Raw, crypto.SHA1),
		NotAfter: certs[0].NotAfter.UTC(),
	}

	var keyPEM []byte
	if p.WithKey && typ == TypePrivateKey {
		// The key is read without redaction (it must stay byte for byte)
		// and goes nowhere but the key file.
		stdout, stderr, code, err := n.Run(ctx, vecsCLI("entry getkey"+opts), nil)
		if err != nil {
			return exportOutputs{}, fmt.Errorf("%s: run vecs-cli entry getkey: %w", where, err)
		}
		if code != 0 {
			return exportOutputs{}, fmt.Errorf("%s: vecs-cli entry getkey exited with code %d%s", where, code, shell.Tail(shell.Redact(env, stderr)))
		}
		if keyPEM, err = checkKey([]byte(stdout), certs[0]); err != nil {
			return exportOutputs{}, fmt.Errorf("%s: %w", where, err)
		}
		out.KeyFile = base + ".key"
	}

	if err := runfile.Write(out.CertFile, []byte(certPEM+"\n"), 0o644); err != nil {
		return exportOutputs{}, err
	}
	if keyPEM != nil {
		if err := runfile.Write(out.KeyFile, keyPEM, 0o600); err != nil {
			return exportOutputs{}, err
		}
	}
	return out, nil
}

// checkKey returns the PEM private key block in out, after checking that
// it is the key of cert.
func checkKey(out []byte, cert *x509.Certificate) ([]byte, error) {
	var block *pem.Block
	for rest := out; ; {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("vecs-cli entry getkey printed no PEM private key")
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			break
		}
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("the entry's private key does not parse: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("the entry's private key is of an unknown kind")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("the entry's private key does not match its certificate")
	}
	return pem.EncodeToMemory(block), nil
}

// fileName makes a store name or alias safe as part of a file name.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

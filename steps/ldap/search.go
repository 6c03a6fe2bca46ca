package ldap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"runbook/internal/runfile"

	goldap "github.com/go-ldap/ldap/v3"

	"runbook/engine"
)

// searchParams are the params of ldap.search, and of ldap.export.
type searchParams struct {
	Node       string   `yaml:"node" doc:"The PNID of the node whose vmdir to search; the target's first node when empty."`
	Base       string   `yaml:"base" required:"true" doc:"The DN to search from, such as cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services,dc=vsphere,dc=local. A base that does not exist fails the step (LDAP result 32); an empty base with scope base reads the root DSE."`
	Scope      string   `yaml:"scope" enum:"base,one,sub" default:"sub" doc:"How deep to search: base (the base entry only), one (the entries directly under it) or sub (the base and everything under it)."`
	Filter     string   `yaml:"filter" default:"(objectClass=*)" doc:"An RFC 4515 filter such as (objectClass=vmwSTSTenantCredential); attribute names and values match case-insensitively."`
	Attributes []string `yaml:"attributes" doc:"The attributes to return, as ldapsearch takes them; every user attribute when empty. Outputs use these spellings as attrs keys."`
}

// searchOutputs are the outputs of ldap.search.
type searchOutputs struct {
	// Entries are the entries found, in server order.
	Entries []Entry `json:"entries" expr:"entries"`
	// Count is len(Entries).
	Count int `json:"count" expr:"count"`
	// DNs are the entries' DNs, in the same order.
	DNs []string `json:"dns" expr:"dns"`
}

var searchStep = engine.Read[searchParams, searchOutputs]{
	Spec: engine.Spec{
		ID:      "ldap.search",
		Summary: "Search vmdir, as ldapsearch does.",
		Doc: "Outputs `entries`, each with its `dn`, its `attrs` (attribute name → values) and " +
			"`binary`, the names of the attributes whose values are base64: certificates " +
			"(userCertificate, cACertificate, vmwLKUPSslTrustAnchor, …) and any value that is not " +
			"UTF-8 text. The base64 of a certificate is its DER, the form cert.parse and a Lookup " +
			"Service sslTrust take. Secrets are never output: a vmwSTSPrivateKey value reads " +
			"`<private key, N bytes>` and a userPassword `<password>`; use ldap.export to save " +
			"entries with their keys into the run folder.\n\n" +
			"```yaml\n- id: creds\n  uses: ldap.search\n  with:\n" +
			"    base: \"cn=${{ facts.domain }},cn=Tenants,cn=IdentityManager,cn=Services,${{ facts.domainDN }}\"\n" +
			"    filter: (objectClass=vmwSTSTenantCredential)\n" +
			"- uses: note\n  with: {message: \"${{ steps.creds.count }} tenant credentials\"}\n```",
	},
	Run: runSearch,
}

// validateSearch checks the base, scope and filter.
func validateSearch(p *searchParams) (scope int, err error) {
	if p.Base != "" { // "" is the root DSE
		if err := checkDN(p.Base); err != nil {
			return 0, fmt.Errorf("base: %w", err)
		}
	}
	scope, ok := scopes[p.Scope]
	if !ok {
		return 0, fmt.Errorf("scope: %q is not one of base, one, sub", p.Scope)
	}
	if _, err := goldap.CompileFilter(p.Filter); err != nil {
		return 0, fmt.Errorf("filter %q: %w", p.Filter, err)
	}
	for _, a := range p.Attributes {
		if a != "*" && a != "+" && a != "1.1" && !validAttrName(a) {
			return 0, fmt.Errorf("attributes: %q is not an attribute name", a)
		}
	}
	return scope, nil
}

// find runs the search p describes.
func find(ctx context.Context, env *engine.Env, p *searchParams) (*directory, []entry, error) {
	scope, err := validateSearch(p)
	if err != nil {
		return nil, nil, err
	}
	d, err := openDirectory(ctx, env, p.Node)
	if err != nil {
		return nil, nil, err
	}
	es, err := d.search(ctx, p.Base, scope, p.Filter, p.Attributes)
	if err != nil {
		return nil, nil, err
	}
	return d, es, nil
}

func runSearch(ctx context.Context, env *engine.Env, p *searchParams) (searchOutputs, error) {
	_, es, err := find(ctx, env, p)
	if err != nil {
		return searchOutputs{}, err
	}
	names := map[string]string{}
	for _, a := range p.Attributes {
		names[strings.ToLower(a)] = a
	}
	out := searchOutputs{Entries: make([]Entry, len(es)), Count: len(es), DNs: make([]string, len(es))}
	for i := range es {
		out.Entries[i] = outputEntry(&es[i], names)
		out.DNs[i] = es[i].DN
	}
	return out, nil
}

// exportParams are the params of ldap.export.
type exportParams struct {
	searchParams `yaml:",inline"`
	File         string `yaml:"file" doc:"The LDIF file to write, a path inside the run folder; <step id>.ldif when empty. An existing file is replaced."`
}

// exportOutputs are the outputs of ldap.export.
type exportOutputs struct {
	// File is the absolute path of the LDIF file written.
	File string `json:"file" expr:"file"`
	// Count is the number of entries written.
	Count int `json:"count" expr:"count"`
	// DNs are the DNs of the entries written, parents first.
	DNs []string `json:"dns" expr:"dns"`
}

var exportStep = engine.Read[exportParams, exportOutputs]{
	Spec: engine.Spec{
		ID:      "ldap.export",
		Summary: "Save vmdir entries, with their binary values and keys, as LDIF in the run folder.",
		Doc: "Searches like ldap.search and writes what it finds as LDIF (RFC 2849) to `file` in the " +
			"run folder, readable by its owner only: every value byte for byte, binary ones " +
			"(certificates, vmwSTSPrivateKey) as `name:: base64`, entries parents first. This is " +
			"the backup fixsts (KB 76719) takes before it deletes the STS tenant credentials, and " +
			"the file ldapmodify, slapadd or Restore can put back. It is the only step that writes " +
			"a private key anywhere, and only there: outputs name the file, never the values.\n\n" +
			"```yaml\n- id: save_creds\n  uses: ldap.export\n  with:\n" +
			"    base: \"cn=${{ facts.domain }},cn=Tenants,cn=IdentityManager,cn=Services,${{ facts.domainDN }}\"\n" +
			"    filter: (|(objectClass=vmwSTSTenantCredential)(objectClass=vmwSTSTenantTrustedCertificateChain))\n" +
			"    file: sts-backup.ldif\n```",
	},
	Run: runExport,
}

func runExport(ctx context.Context, env *engine.Env, p *exportParams) (exportOutputs, error) {
	path, err := exportPath(env, p.File)
	if err != nil {
		return exportOutputs{}, err
	}
	d, es, err := find(ctx, env, &p.searchParams)
	if err != nil {
		return exportOutputs{}, err
	}
	sortParentsFirst(es)
	recs := make([]record, len(es))
	out := exportOutputs{File: path, Count: len(es), DNs: make([]string, len(es))}
	for i := range es {
		recs[i] = record{entry: es[i]}
		out.DNs[i] = es[i].DN
	}
	// The header is text for people, and redacted; the values are the
	// directory's, byte for byte.
	header := redact(env, fmt.Sprintf("ldap.export from %s: base %s, scope %s, filter %s\n%d entries; values after \"::\" are base64, byte for byte",
		d.pnid, p.Base, p.Scope, p.Filter, len(es)))
	var buf bytes.Buffer
	if err := writeLDIF(&buf, header, recs); err != nil {
		return exportOutputs{}, err
	}
	if err := runfile.Write(path, buf.Bytes(), 0o600); err != nil {
		return exportOutputs{}, err
	}
	env.Logf("exported %d entries to %s", len(es), path)
	return out, nil
}

// exportPath resolves the file param inside the run folder.
func exportPath(env *engine.Env, file string) (string, error) {
	if env.RunDir == "" {
		return "", errors.New("ldap.export writes into the run folder, and this run has none")
	}
	if file == "" {
		file = env.StepID + ".ldif"
	}
	if !filepath.IsLocal(file) {
		return "", fmt.Errorf("file: %q is not a path inside the run folder", file)
	}
	dir, err := filepath.Abs(env.RunDir)
	if err != nil {
		return "", fmt.Errorf("run folder: %w", err)
	}
	return filepath.Join(dir, file), nil
}

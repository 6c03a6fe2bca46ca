package target

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Default ports of a vCenter appliance, used when a profile leaves a port
// out or sets it to 0.
const (
	DefaultHTTPSPort = 443
	DefaultLDAPPort  = 389
	DefaultLDAPSPort = 636
	DefaultSSHPort   = 22
)

// Profile describes a target: an SSO domain and the appliance nodes in it,
// with how to reach and authenticate to each. It is what admins write for
// real appliances and what `runbook lab serve` writes for the lab.
//
// A profile holds no passwords: it names the files or environment variables
// they are read from, when a connection needs them.
type Profile struct {
	// Domain is the SSO domain, such as vsphere.local.
	Domain string `yaml:"domain"`
	// SSO is the SSO administrator used for vmdir (LDAP) and the vSphere and
	// Lookup Service APIs.
	SSO Credentials `yaml:"sso"`
	// Nodes are the appliances of the domain; the first one is the node
	// runbooks act on unless a step names another.
	Nodes []NodeProfile `yaml:"nodes"`

	// Path is the file the profile was read from or is about to be written
	// to; relative password files are resolved against its directory (the
	// working directory when Path is empty). It is not part of the YAML.
	Path string `yaml:"-"`
}

// Credentials are a user and where its password is read from: exactly one of
// PasswordFile and PasswordEnv is set.
type Credentials struct {
	// User is the login. For SSO it is a UPN such as
	// administrator@vsphere.local; for SSH an account such as root.
	User string `yaml:"user,omitempty"`
	// PasswordFile is a file holding the password (one trailing newline is
	// ignored). A relative path is relative to the profile file.
	PasswordFile string `yaml:"password_file,omitempty"`
	// PasswordEnv is the name of an environment variable holding the
	// password.
	PasswordEnv string `yaml:"password_env,omitempty"`
}

// NodeProfile is one appliance node of a profile.
type NodeProfile struct {
	// PNID is the node's primary network identifier, as
	// `vmafd-cli get-pnid` prints it.
	PNID string `yaml:"pnid"`
	// Address is the IP address or host name connections go to.
	Address string `yaml:"address"`
	// Ports are the node's service ports; zero means the default.
	Ports Ports `yaml:"ports,omitempty"`
	// TLSThumbprint pins the SHA-256 of the certificate the node serves on
	// HTTPS and LDAPS (its machine SSL certificate), as colon-separated or
	// plain hex in any case.
	TLSThumbprint string `yaml:"tls_thumbprint,omitempty"`
	// SSH is how to log in to the node's shell.
	SSH SSHProfile `yaml:"ssh"`
}

// Ports are a node's service ports. Zero (or absent) means the appliance
// default: 443, 389, 636 and 22.
type Ports struct {
	// HTTPS serves the vSphere API, the Lookup Service and the IDM REST API.
	HTTPS int `yaml:"https,omitempty"`
	// LDAP is vmdir's plain LDAP port.
	LDAP int `yaml:"ldap,omitempty"`
	// LDAPS is vmdir's LDAP-over-TLS port. -1 says the node serves no LDAPS;
	// plain LDAP is then used, and only to a loopback address.
	LDAPS int `yaml:"ldaps,omitempty"`
	// SSH is the SSH port.
	SSH int `yaml:"ssh,omitempty"`
}

// SSHProfile is a node's SSH login and pinned host key.
type SSHProfile struct {
	// Credentials are the SSH login; the user defaults to root.
	Credentials `yaml:",inline"`
	// HostKey pins the node's SSH host key by its SHA-256 fingerprint, as
	// ssh-keygen -l prints it: "SHA256:" and unpadded base64.
	HostKey string `yaml:"host_key,omitempty"`
}

// withDefaults returns the ports with zeros replaced by the defaults.
func (p Ports) withDefaults() Ports {
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	return Ports{
		HTTPS: def(p.HTTPS, DefaultHTTPSPort),
		LDAP:  def(p.LDAP, DefaultLDAPPort),
		LDAPS: def(p.LDAPS, DefaultLDAPSPort),
		SSH:   def(p.SSH, DefaultSSHPort),
	}
}

// ProfileError is one problem in a profile file, at a position.
type ProfileError struct {
	// File is the profile's path.
	File string
	// Line and Col locate the problem (1-based); zero when unknown.
	Line, Col int
	// Message says what is wrong.
	Message string
}

// Error prints "path:line:col: message", leaving out what is unknown.
func (e ProfileError) Error() string {
	switch {
	case e.File == "" && e.Line == 0:
		return e.Message
	case e.Line == 0:
		return e.File + ": " + e.Message
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Message)
}

// ProfileErrors are every problem found in a profile, sorted by position.
type ProfileErrors []ProfileError

// Error prints one "path:line:col: message" per line.
func (es ProfileErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// LoadProfile reads and checks the profile at path. Unknown keys, values of
// the wrong type and invalid settings are reported together as
// [ProfileErrors] with their line and column. No password is read.
func LoadProfile(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return parseProfile(path, data)
}

// parseProfile decodes and checks a profile; path is used in messages and
// to resolve password files.
func parseProfile(path string, data []byte) (*Profile, error) {
	d := &decoder{file: path, pos: map[string]*yaml.Node{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ProfileErrors{{File: path, Message: "profile is empty"}}
		}
		return nil, ProfileErrors{d.yamlError(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ProfileErrors{{File: path, Line: extra.Line, Col: extra.Column, Message: "a profile is a single YAML document"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	d.check(root, reflect.TypeFor[Profile](), "")
	if len(d.errs) > 0 {
		return nil, d.sorted()
	}
	p := &Profile{}
	if err := root.Decode(p); err != nil {
		return nil, ProfileErrors{d.yamlError(err)}
	}
	p.Path = path
	for _, ve := range p.validate() {
		line, col := d.at(ve.field)
		d.errs = append(d.errs, ProfileError{File: path, Line: line, Col: col, Message: ve.Error()})
	}
	if len(d.errs) > 0 {
		return nil, d.sorted()
	}
	return p, nil
}

// Validate checks the profile as LoadProfile does, without positions.
func (p *Profile) Validate() error {
	ves := p.validate()
	if len(ves) == 0 {
		return nil
	}
	es := make(ProfileErrors, len(ves))
	for i, ve := range ves {
		es[i] = ProfileError{File: p.Path, Message: ve.Error()}
	}
	return es
}

// validationError is a problem with a field, named by its path such as
// "nodes[0].pnid"; the path also locates it in the file.
type validationError struct {
	field string
	msg   string
}

func (e validationError) Error() string { return e.msg }

// validate returns every problem with the profile's values.
func (p *Profile) validate() []validationError {
	var errs []validationError
	bad := func(field, format string, args ...any) {
		errs = append(errs, validationError{field, field + ": " + fmt.Sprintf(format, args...)})
	}
	missing := func(parent, key, hint string) {
		msg := key + " is required" + hint
		if parent != "" {
			msg = parent + ": " + msg
		}
		errs = append(errs, validationError{parent, msg})
	}
	if p.Domain == "" {
		missing("", "domain", " (the SSO domain, such as vsphere.local)")
	} else if !validDomain(p.Domain) {
		bad("domain", "%q is not a domain name such as vsphere.local", p.Domain)
	}
	if p.SSO.User == "" {
		missing("sso", "user", " (the SSO administrator, such as administrator@vsphere.local)")
	} else if user, dom, ok := strings.Cut(p.SSO.User, "@"); !ok || user == "" || dom == "" {
		bad("sso.user", "%q is not a UPN such as administrator@%s", p.SSO.User, p.Domain)
	} else if p.Domain != "" && !strings.EqualFold(dom, p.Domain) {
		bad("sso.user", "%q is not a user of the SSO domain %s; vmdir only binds its own users", p.SSO.User, p.Domain)
	}
	if msg := p.SSO.sourceProblem(); msg != "" {
		bad("sso", "%s", msg)
	}
	if len(p.Nodes) == 0 {
		bad("nodes", "at least one node is required")
	}
	seen := map[string]int{}
	for i, n := range p.Nodes {
		at := fmt.Sprintf("nodes[%d]", i)
		if n.PNID == "" {
			missing(at, "pnid", "")
		} else if j, dup := seen[strings.ToLower(n.PNID)]; dup {
			bad(at+".pnid", "%s is already nodes[%d]", n.PNID, j)
		} else {
			seen[strings.ToLower(n.PNID)] = i
		}
		if n.Address == "" {
			missing(at, "address", "")
		}
		for _, pt := range []struct {
			name string
			v    int
			min  int
		}{{"https", n.Ports.HTTPS, 0}, {"ldap", n.Ports.LDAP, 0}, {"ldaps", n.Ports.LDAPS, -1}, {"ssh", n.Ports.SSH, 0}} {
			if pt.v < pt.min || pt.v > 65535 {
				bad(at+".ports."+pt.name, "%d is not a port number", pt.v)
			}
		}
		if n.TLSThumbprint != "" {
			if _, err := parseThumbprint(n.TLSThumbprint); err != nil {
				bad(at+".tls_thumbprint", "%v", err)
			}
		}
		if n.SSH.HostKey != "" {
			if _, err := parseHostKey(n.SSH.HostKey); err != nil {
				bad(at+".ssh.host_key", "%v", err)
			}
		}
		if msg := n.SSH.sourceProblem(); msg != "" {
			bad(at+".ssh", "%s", msg)
		}
	}
	return errs
}

// validDomain reports whether s looks like a DNS domain name.
func validDomain(s string) bool {
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || strings.ContainsAny(label, " ,=+<>#;\"\\/@") {
			return false
		}
	}
	return true
}

// sourceProblem says what is wrong with where the password comes from, or "".
func (c Credentials) sourceProblem() string {
	switch {
	case c.PasswordFile == "" && c.PasswordEnv == "":
		return "set password_file or password_env"
	case c.PasswordFile != "" && c.PasswordEnv != "":
		return "set only one of password_file and password_env"
	}
	return ""
}

// password reads the password; base is the directory relative files are
// resolved against. Errors name the file or variable, never the value.
func (c Credentials) password(base string) (string, error) {
	if c.PasswordEnv != "" {
		v, ok := os.LookupEnv(c.PasswordEnv)
		switch {
		case !ok:
			return "", fmt.Errorf("read password: environment variable %s is not set", c.PasswordEnv)
		case v == "":
			return "", fmt.Errorf("read password: environment variable %s is empty", c.PasswordEnv)
		}
		return v, nil
	}
	if c.PasswordFile == "" {
		return "", errors.New("read password: no password_file or password_env")
	}
	name := c.PasswordFile
	if !filepath.IsAbs(name) {
		name = filepath.Join(base, name)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		// The *PathError names the file only.
		return "", fmt.Errorf("read password: %w", err)
	}
	v := strings.TrimSuffix(string(data), "\n")
	v = strings.TrimSuffix(v, "\r")
	if v == "" {
		return "", fmt.Errorf("read password: file %s is empty", name)
	}
	return v, nil
}

// dir is the directory relative password files are resolved against.
func (p *Profile) dir() string {
	if p.Path == "" {
		return "."
	}
	return filepath.Dir(p.Path)
}

// clone returns a deep copy of the profile.
func (p *Profile) clone() *Profile {
	c := *p
	c.Nodes = append([]NodeProfile(nil), p.Nodes...)
	return &c
}

// Write checks the profile and writes it to path as YAML, atomically and
// readable by the owner only. It leaves p.Path alone; relative password
// files are written as they are, so they must be relative to path's
// directory.
func (p *Profile) Write(path string) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	var buf bytes.Buffer
	buf.WriteString("# runbook target profile: an SSO domain and how to reach its nodes.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	if err := writeFileAtomic(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// decoder checks a profile's YAML against the Go types before decoding it,
// so that every unknown key and wrong type is reported with its position.
type decoder struct {
	file string
	errs ProfileErrors
	// pos maps a field path such as "nodes[0].pnid" to its value node (and
	// "" to the root).
	pos map[string]*yaml.Node
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, ProfileError{File: d.file, Line: n.Line, Col: n.Column, Message: fmt.Sprintf(format, args...)})
}

// at returns the position of the field path, or of its nearest parent that
// is present in the file.
func (d *decoder) at(field string) (line, col int) {
	for {
		if n, ok := d.pos[field]; ok {
			return n.Line, n.Column
		}
		if field == "" {
			return 0, 0
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			field = ""
		} else {
			field = field[:i]
		}
	}
}

func (d *decoder) sorted() ProfileErrors {
	sort.SliceStable(d.errs, func(i, j int) bool {
		a, b := d.errs[i], d.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return d.errs
}

// yamlError turns a yaml.v3 error ("yaml: line 3: …") into a ProfileError.
func (d *decoder) yamlError(err error) ProfileError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, text
			}
		}
	}
	if line == 0 {
		return ProfileError{File: d.file, Message: msg}
	}
	return ProfileError{File: d.file, Line: line, Col: 1, Message: msg}
}

// check walks n against the Go type t, recording positions and reporting
// unknown keys and values of the wrong kind.
func (d *decoder) check(n *yaml.Node, t reflect.Type, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	d.pos[path] = n
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // absent value: the zero value, judged by validate
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s: expected a mapping, got %s", describe(path), kindOf(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				names := make([]string, 0, len(fields))
				for name := range fields {
					names = append(names, name)
				}
				d.errorf(k, "unknown key %q in %s%s", k.Value, describe(path), didYouMean(k.Value, names))
				continue
			}
			d.check(v, ft, joinPath(path, k.Value))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s: expected a list, got %s", describe(path), kindOf(n))
			return
		}
		for i, c := range n.Content {
			d.check(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s: expected a string, got %s", describe(path), kindOf(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.errorf(n, "%s: expected an integer, got %s", describe(path), kindOf(n))
		}
	}
}

// yamlFields maps the YAML keys of struct type t to their field types,
// flattening inline fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(path string) string {
	if path == "" {
		return "the profile"
	}
	return path
}

func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// didYouMean returns ` (did you mean "x"?)` for the candidate nearest to
// name, or "".
func didYouMean(name string, candidates []string) string {
	best, bestDist := "", max(2, len(name)/3)+1
	sort.Strings(candidates)
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(name), c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// hostPort joins the node's address and a port.
func hostPort(address string, port int) string {
	return net.JoinHostPort(address, strconv.Itoa(port))
}

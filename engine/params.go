package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ParamInput is where BindParams looks for parameter values. A value given
// in more places is taken from the first of: Flags, Env, File, the default.
// Secrets come only from Env, a secret file or the prompt.
type ParamInput struct {
	// Flags are the values of --param name=value, by name.
	Flags map[string]string
	// File is the path of a YAML params file, a mapping of name to value
	// (a list param may be a YAML list). A secret is given there as
	// <name>_file: PATH, the path relative to the params file.
	File string
	// Env is the environment, as os.Environ returns it. RUNBOOK_PARAM_<NAME>
	// gives a value and, for a secret, RUNBOOK_PARAM_<NAME>_FILE the path of
	// a file holding it; NAME is the param name upper-cased.
	Env []string
	// SecretPrompt asks the person at the terminal for a required secret
	// given nowhere else. Nil means there is no terminal.
	SecretPrompt func(name, description string) (string, error)
}

// BindParams returns the value of every declared param, typed as
// expressions see it: string (also enum and secret), int, bool,
// time.Duration or []string. It reports, in one error, every unknown name,
// value of the wrong type, secret given where secrets are not allowed, and
// missing required param.
func (rb *Runbook) BindParams(in ParamInput) (map[string]any, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	names := make([]string, 0, len(rb.Params))
	byName := map[string]*ParamDecl{}
	for _, p := range rb.Params {
		names = append(names, p.Name)
		byName[p.Name] = p
	}
	for _, name := range sortedKeys(in.Flags) {
		if byName[name] == nil {
			fail("unknown param %q in --param%s", name, didYouMean(name, names))
		}
	}
	env := map[string]string{}
	for _, kv := range in.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			env[k] = v
		}
	}
	file, fileDir, err := readParamsFile(in.File)
	if err != nil {
		return nil, err
	}
	for _, key := range file.order {
		if byName[key] != nil {
			continue
		}
		if base, ok := strings.CutSuffix(key, "_file"); ok && byName[base] != nil {
			if byName[base].Type != ParamSecret {
				fail("%s: %s is not a secret; give its value as %s", in.File, key, base)
			}
			continue
		}
		fail("%s: unknown param %q%s", in.File, key, didYouMean(key, names))
	}

	values := make(map[string]any, len(rb.Params))
	for _, p := range rb.Params {
		envName := envPrefix + strings.ToUpper(p.Name)
		if p.Type == ParamSecret {
			v, ok, err := p.secret(in, env, envName, file, fileDir)
			switch {
			case err != nil:
				errs = append(errs, err)
			case ok:
				values[p.Name] = v
			case p.Required:
				fail("missing secret param %s%s: set %s or %s_FILE, give %s_file in the params file, or run at a terminal to be asked",
					p.Name, describe(p), envName, envName, p.Name)
			default:
				values[p.Name] = ""
			}
			continue
		}
		var (
			v     any
			err   error
			given = true
		)
		if s, ok := in.Flags[p.Name]; ok {
			v, err = p.fromString(s)
			err = wrapIf(err, "--param %s", p.Name)
		} else if s, ok := env[envName]; ok {
			v, err = p.fromString(s)
			err = wrapIf(err, "%s", envName)
		} else if n, ok := file.values[p.Name]; ok {
			v, err = p.fromNode(n)
			err = wrapIf(err, "%s: %s", in.File, p.Name)
		} else {
			given = false
		}
		switch {
		case err != nil:
			errs = append(errs, err)
		case given:
			values[p.Name] = v
		case p.Required:
			fail("missing required param %s%s: give --param %s=VALUE, set %s, or put it in the params file", p.Name, describe(p), p.Name, envName)
		case p.Default != nil:
			values[p.Name] = p.Default
		default:
			values[p.Name] = zeroParam(p.Type)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return values, nil
}

const envPrefix = "RUNBOOK_PARAM_"

func describe(p *ParamDecl) string {
	if p.Description == "" {
		return ""
	}
	return " (" + p.Description + ")"
}

func wrapIf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// secret finds the value of a secret param. It never puts the value in an
// error.
func (p *ParamDecl) secret(in ParamInput, env map[string]string, envName string, file paramsFile, fileDir string) (string, bool, error) {
	if _, ok := in.Flags[p.Name]; ok {
		return "", false, fmt.Errorf("--param %s: %s is a secret and would show in the process list and shell history; set %s or %s_FILE, give %s_file in the params file, or let the prompt ask",
			p.Name, p.Name, envName, envName, p.Name)
	}
	if _, ok := file.values[p.Name]; ok {
		return "", false, fmt.Errorf("%s: %s is a secret; keep it out of the params file and give %s_file: PATH instead", in.File, p.Name, p.Name)
	}
	if v, ok := env[envName]; ok {
		return v, true, nil
	}
	if path, ok := env[envName+"_FILE"]; ok {
		v, err := readSecretFile(path)
		if err != nil {
			return "", false, fmt.Errorf("%s_FILE: %w", envName, err)
		}
		return v, true, nil
	}
	if n, ok := file.values[p.Name+"_file"]; ok {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			return "", false, fmt.Errorf("%s: %s_file: want a path, got %s", in.File, p.Name, nodeKind(n))
		}
		path := n.Value
		if !filepath.IsAbs(path) {
			path = filepath.Join(fileDir, path)
		}
		v, err := readSecretFile(path)
		if err != nil {
			return "", false, fmt.Errorf("%s: %s_file: %w", in.File, p.Name, err)
		}
		return v, true, nil
	}
	if p.Required && in.SecretPrompt != nil {
		v, err := in.SecretPrompt(p.Name, p.Description)
		if err != nil {
			return "", false, fmt.Errorf("ask for %s: %w", p.Name, err)
		}
		return v, true, nil
	}
	return "", false, nil
}

// readSecretFile reads a secret from a file, without its final line break.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// paramsFile is a parsed params file.
type paramsFile struct {
	values map[string]*yaml.Node
	order  []string
}

func readParamsFile(path string) (paramsFile, string, error) {
	f := paramsFile{values: map[string]*yaml.Node{}}
	if path == "" {
		return f, "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return f, "", fmt.Errorf("read params file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return f, "", fmt.Errorf("read params file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if len(doc.Content) == 0 {
		return f, dir, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return f, "", fmt.Errorf("read params file %s: want a mapping of param name to value", path)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if _, dup := f.values[k.Value]; dup {
			return f, "", fmt.Errorf("read params file %s: line %d: duplicate key %q", path, k.Line, k.Value)
		}
		f.values[k.Value] = root.Content[i+1]
		f.order = append(f.order, k.Value)
	}
	return f, dir, nil
}

// zeroParam is the value of an optional param given nowhere, without a
// default.
func zeroParam(t ParamType) any {
	switch t {
	case ParamInt:
		return 0
	case ParamBool:
		return false
	case ParamDuration:
		return time.Duration(0)
	case ParamList:
		return []string(nil)
	}
	return ""
}

// fromString converts the text of a flag or environment variable to the
// param's type. A list is comma-separated.
func (p *ParamDecl) fromString(s string) (any, error) {
	switch p.Type {
	case ParamInt:
		i, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		return i, nil
	case ParamBool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case ParamDuration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration such as 90s, 5m or 1h30m", s)
		}
		return d, nil
	case ParamList:
		var out []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		return out, nil
	case ParamEnum:
		if !contains(p.Values, s) {
			return nil, fmt.Errorf("%q is not one of %s%s", s, strings.Join(p.Values, ", "), didYouMean(s, p.Values))
		}
		return s, nil
	}
	return s, nil
}

// fromNode converts a YAML value (a default, or a params file entry) to the
// param's type.
func (p *ParamDecl) fromNode(n *yaml.Node) (any, error) {
	if n.Kind == yaml.SequenceNode && p.Type == ParamList {
		out := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
				return nil, fmt.Errorf("item %d: want a string, got %s", i, nodeKind(item))
			}
			out = append(out, item.Value)
		}
		return out, nil
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return nil, fmt.Errorf("want %s, got %s", paramTypeName(p.Type), nodeKind(n))
	}
	want := map[ParamType]string{ParamInt: "!!int", ParamBool: "!!bool"}[p.Type]
	if want != "" && n.ShortTag() != want {
		return nil, fmt.Errorf("want %s, got %s", paramTypeName(p.Type), nodeKind(n))
	}
	if want == "" && p.Type != ParamDuration && n.ShortTag() != "!!str" {
		return nil, fmt.Errorf("want %s, got %s; quote it: %q", paramTypeName(p.Type), nodeKind(n), n.Value)
	}
	if p.Type == ParamInt {
		var i int
		if err := n.Decode(&i); err != nil {
			return nil, fmt.Errorf("%s is not a whole number", n.Value)
		}
		return i, nil
	}
	return p.fromString(n.Value)
}

func paramTypeName(t ParamType) string {
	switch t {
	case ParamInt:
		return "an int"
	case ParamBool:
		return "true or false"
	case ParamDuration:
		return "a duration"
	case ParamList:
		return "a list"
	case ParamEnum:
		return "one of the values"
	}
	return "a string"
}

// SecretValues returns the non-empty values of the runbook's secret params
// in values (as BindParams returns them), for redaction.
func (rb *Runbook) SecretValues(values map[string]any) []string {
	var out []string
	for _, p := range rb.Params {
		if p.Type != ParamSecret {
			continue
		}
		if s, ok := values[p.Name].(string); ok && s != "" && !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

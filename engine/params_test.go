package engine

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBindParams(t *testing.T) {
	rb := ltLoad(t, "testdata/valid/sts.yaml")
	dir := t.TempDir()
	writeFile(t, dir, "pw.txt", "from-file\n")
	paramsFile := writeFile(t, dir, "params.yaml", "min_days: 90\nnodes: [a, b]\nsso_password_file: pw.txt\nwait: 90s\n")
	envSecretFile := writeFile(t, dir, "env-pw", "from-env-file\r\n")

	defaults := map[string]any{
		"sso_password": "pw", "min_days": 180, "mode": "fix",
		"nodes": []string{"vcsa1", "vcsa2"}, "wait": 5 * time.Minute, "force": false,
	}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range defaults {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		in   ParamInput
		want map[string]any
	}{
		{"defaults", ParamInput{Env: []string{"RUNBOOK_PARAM_SSO_PASSWORD=pw"}}, defaults},
		{"flags", ParamInput{
			Flags: map[string]string{"min_days": "30", "mode": "check", "nodes": "x, y,,z", "wait": "1h", "force": "true"},
			Env:   []string{"RUNBOOK_PARAM_SSO_PASSWORD=pw", "RUNBOOK_PARAM_MIN_DAYS=60"},
		}, with("min_days", 30, "mode", "check", "nodes", []string{"x", "y", "z"}, "wait", time.Hour, "force", true)},
		{"env over file", ParamInput{
			File: paramsFile,
			Env:  []string{"RUNBOOK_PARAM_MIN_DAYS=60", "OTHER=1", "RUNBOOK_PARAM_UNRELATED=x"},
		}, with("min_days", 60, "nodes", []string{"a", "b"}, "wait", 90*time.Second, "sso_password", "from-file")},
		{"secret file from env", ParamInput{
			Env: []string{"RUNBOOK_PARAM_SSO_PASSWORD_FILE=" + envSecretFile},
		}, with("sso_password", "from-env-file")},
		{"prompt", ParamInput{
			SecretPrompt: func(name, desc string) (string, error) {
				if name != "sso_password" || desc != "SSO administrator password" {
					return "", errors.New("asked the wrong question: " + name + " " + desc)
				}
				return "typed", nil
			},
		}, with("sso_password", "typed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rb.BindParams(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("BindParams =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestBindParamsErrors(t *testing.T) {
	rb := ltLoad(t, "testdata/valid/sts.yaml")
	dir := t.TempDir()
	plainSecret := writeFile(t, dir, "plain.yaml", "sso_password: hunter2\nmin_dayz: 3\nmode_file: x\n")
	tests := []struct {
		name string
		in   ParamInput
		want []string
	}{
		{"secret on the command line", ParamInput{Flags: map[string]string{"sso_password": "hunter2"}},
			[]string{"--param sso_password: sso_password is a secret", "RUNBOOK_PARAM_SSO_PASSWORD_FILE"}},
		{"secret in the params file", ParamInput{File: plainSecret, Env: []string{"RUNBOOK_PARAM_SSO_PASSWORD=x"}},
			[]string{"keep it out of the params file and give sso_password_file", `unknown param "min_dayz" (did you mean "min_days"?)`, "mode_file is not a secret"}},
		{"missing secret without a terminal", ParamInput{},
			[]string{"missing secret param sso_password (SSO administrator password): set RUNBOOK_PARAM_SSO_PASSWORD"}},
		{"bad values", ParamInput{
			Flags: map[string]string{"min_days": "many", "mode": "fixx", "force": "maybe", "wait": "5 minutes", "nodez": "a"},
			Env:   []string{"RUNBOOK_PARAM_SSO_PASSWORD=x"},
		}, []string{
			`--param min_days: "many" is not a whole number`,
			`--param mode: "fixx" is not one of check, fix (did you mean "fix"?)`,
			`--param force: "maybe" is not true or false`,
			`--param wait: "5 minutes" is not a duration`,
			`unknown param "nodez" in --param (did you mean "nodes"?)`,
		}},
		{"missing secret file", ParamInput{Env: []string{"RUNBOOK_PARAM_SSO_PASSWORD_FILE=" + filepath.Join(dir, "nope")}},
			[]string{"RUNBOOK_PARAM_SSO_PASSWORD_FILE: read secret file"}},
		{"prompt fails", ParamInput{SecretPrompt: func(string, string) (string, error) { return "", errors.New("no tty") }},
			[]string{"ask for sso_password: no tty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rb.BindParams(tt.in)
			if err == nil {
				t.Fatal("BindParams succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the secret:\n%v", err)
			}
		})
	}
}

func TestBindParamsRequired(t *testing.T) {
	src := `apiVersion: runbook/v1
name: required
title: Required params
params:
  node: {type: string, required: true, description: the node to fix}
  token: {type: secret, required: false}
steps:
  - id: ask
    uses: test.confirm
    with: {prompt: "fix ${{ params.node }}?"}
`
	rb, err := Load(ltRegistry(), "required.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rb.BindParams(ParamInput{})
	if err == nil || !strings.Contains(err.Error(), "missing required param node (the node to fix): give --param node=VALUE, set RUNBOOK_PARAM_NODE") {
		t.Errorf("missing required param: err = %v", err)
	}
	got, err := rb.BindParams(ParamInput{Flags: map[string]string{"node": "vcsa1"}, SecretPrompt: func(string, string) (string, error) {
		t.Error("prompted for an optional secret")
		return "", nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got["node"] != "vcsa1" || got["token"] != "" {
		t.Errorf("BindParams = %v", got)
	}
	if s := rb.SecretValues(got); len(s) != 0 {
		t.Errorf("SecretValues with an empty secret = %q", s)
	}
}

func TestSecretValues(t *testing.T) {
	rb := ltLoad(t, "testdata/valid/sts.yaml")
	values, err := rb.BindParams(ParamInput{Env: []string{"RUNBOOK_PARAM_SSO_PASSWORD=s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := rb.SecretValues(values); !reflect.DeepEqual(got, []string{"s3cret"}) {
		t.Errorf("SecretValues = %q, want [s3cret]", got)
	}
}

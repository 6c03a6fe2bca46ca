package certmgr

import (
	"fmt"
	"regexp"
	"strings"
)

// promptKind names a question certificate-manager asks.
type promptKind string

// The questions of certificate-manager (reference §4.2), each answered at
// most limit times.
const (
	askOption      promptKind = "option"
	askUseConfig   promptKind = "use-config"
	askUsername    promptKind = "username"
	askPassword    promptKind = "password"
	askReconfigure promptKind = "reconfigure"
	askValue       promptKind = "value"
	askVMCAName    promptKind = "vmca-name"
	askContinue    promptKind = "continue"
)

// prompt recognizes a question at the end of what the program printed
// since the last answer. Each pattern ends at the prompt's last
// character, so that a prompt still arriving piecemeal is not answered.
type prompt struct {
	kind  promptKind
	re    *regexp.Regexp
	limit int
}

var prompts = []prompt{
	{askOption, regexp.MustCompile(`Option\[1 to 8\]:[ \t]*$`), 1},
	{askUseConfig, regexp.MustCompile(`Do you wish to generate all certificates using configuration file : Option\[Y/N\] \? :[ \t]*$`), 1},
	{askUsername, regexp.MustCompile(`Enter username \[[^\]\n]*\]:[ \t]*$`), 1},
	{askPassword, regexp.MustCompile(`Enter password:[ \t]*$`), 1},
	{askReconfigure, regexp.MustCompile(`certool\.cfg file exists, Do you wish to reconfigure : Option\[Y/N\] \? :[ \t]*$`), 1},
	{askVMCAName, regexp.MustCompile(`Enter proper value for VMCA 'Name' :[ \t]*$`), 1},
	// 'Key' then, optionally, a parenthesized hint, then the bracketed
	// default or [optional], then " :".
	{askValue, regexp.MustCompile(`Enter proper value for '([A-Za-z]+)'[^\n]*\] :[ \t]*$`), 1},
	// Option 8 asks twice in a row (reference §4.2).
	{askContinue, regexp.MustCompile(`Continue operation : Option\[Y/N\] \? :[ \t]*$`), 2},
}

// match returns the prompt screen ends with, and the key of a value
// prompt. Every prompt is one line: only the last is looked at.
func match(screen string) (p *prompt, key string, ok bool) {
	last := screen[strings.LastIndexByte(screen, '\n')+1:]
	for i := range prompts {
		if m := prompts[i].re.FindStringSubmatch(last); m != nil {
			if len(m) > 1 {
				key = m[1]
			}
			return &prompts[i], key, true
		}
	}
	return nil, "", false
}

// answers are what to type at each question of one certificate-manager
// run.
type answers struct {
	option   string
	user     string
	password string
	// values are the certool.cfg answers by key, as typed.
	values   map[string]string
	vmcaName string
}

// dialog answers certificate-manager's questions from answers, each at
// most as often as its prompt allows: a question asked again means the
// previous answer was refused, and typing it again would loop.
type dialog struct {
	a     answers
	asked map[string]int
	// confirmed is set once a "Continue operation" was answered: the
	// operation may have started.
	confirmed bool
}

func newDialog(a answers) *dialog {
	return &dialog{a: a, asked: map[string]int{}}
}

// reply returns what to type at the prompt screen ends with. An error means the program asked something it must not
// be told again, or something this step does not know how to answer.
func (d *dialog) reply(screen string) (string, error) {
	p, key, ok := match(screen)
	if !ok {
		return "", &promptError{kind: "unknown", screen: screen}
	}
	id := string(p.kind)
	if p.kind == askValue {
		id += ":" + key
	}
	d.asked[id]++
	if d.asked[id] > p.limit {
		return "", d.refused(p.kind, key, screen)
	}
	switch p.kind {
	case askOption:
		return d.a.option, nil
	case askUseConfig, askReconfigure:
		// Use (and rewrite) a configuration, so that every value is the
		// step's, never a previous run's.
		return "Y", nil
	case askUsername:
		return d.a.user, nil
	case askPassword:
		return d.a.password, nil
	case askVMCAName:
		return d.a.vmcaName, nil
	case askValue:
		v, known := d.a.values[key]
		if !known {
			return "", &promptError{kind: "unknown", screen: screen, detail: fmt.Sprintf("it asks for certool.cfg key '%s', which this step has no value for", key)}
		}
		return v, nil
	case askContinue:
		d.confirmed = true
		return "Y", nil
	}
	return "", &promptError{kind: "unknown", screen: screen}
}

// refused explains a question asked once too often.
func (d *dialog) refused(kind promptKind, key, screen string) error {
	e := &promptError{kind: "refused", screen: screen}
	switch kind {
	case askPassword:
		e.detail = fmt.Sprintf("it refused the SSO password of %s", d.a.user)
	case askValue:
		e.detail = fmt.Sprintf("it refused %s = %q", key, d.a.values[key])
	case askOption:
		e.detail = "it came back to its menu"
	default:
		e.detail = fmt.Sprintf("it asked the %s question again", kind)
	}
	return e
}

// promptError is a question certificate-manager asked that the step
// cannot answer; it quotes the end of the screen.
type promptError struct {
	kind   string // "unknown" or "refused"
	detail string
	screen string
}

func (e *promptError) Error() string {
	var b strings.Builder
	b.WriteString("certificate-manager ")
	if e.kind == "unknown" {
		b.WriteString("asked something this step does not answer")
	} else {
		b.WriteString("did not accept an answer")
	}
	if e.detail != "" {
		b.WriteString(": ")
		b.WriteString(e.detail)
	}
	b.WriteString("; it was stopped with Ctrl-D. Its screen ended with:\n")
	b.WriteString(screenTail(e.screen, 8))
	return b.String()
}

// screenTail returns the last n non-empty lines of a screen, each
// indented, for error messages.
func screenTail(screen string, n int) string {
	var lines []string
	for _, l := range strings.Split(normalize(screen, true), "\n") {
		if l = strings.TrimRight(l, " \t"); strings.TrimSpace(l) != "" {
			lines = append(lines, "    "+l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

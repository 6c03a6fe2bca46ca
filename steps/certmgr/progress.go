package certmgr

import (
	"regexp"
	"strconv"
	"strings"
)

// Status is one progress line of certificate-manager:
//
//	Status : 45% Completed [Replacing Machine SSL Cert...]
//	Rollback Status : 100% Completed [Rollback completed successfully]
type Status struct {
	// Rollback is true for a "Rollback Status" line.
	Rollback bool `json:"rollback,omitempty"`
	// Percent is the percentage, 0 to 100.
	Percent int `json:"percent"`
	// Message is the text between the brackets.
	Message string `json:"message"`
}

// String formats s as certificate-manager prints it.
func (s Status) String() string {
	prefix := "Status"
	if s.Rollback {
		prefix = "Rollback Status"
	}
	return prefix + " : " + strconv.Itoa(s.Percent) + "% Completed [" + s.Message + "]"
}

// statusLine matches a progress line; certificate-manager prints exactly
// one space around the colon, but a terminal may have eaten or doubled
// white space, so any is accepted. The message holds no control
// character.
var statusLine = regexp.MustCompile(`^(Rollback )?Status\s*:\s*(\d{1,3})%\s*Completed\s*\[([^\]\x00-\x1f\x7f]*)\]$`)

// ParseStatus parses one progress line, white space around it ignored. It
// reports false for any other line, and for a percentage above 100.
func ParseStatus(line string) (Status, bool) {
	m := statusLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return Status{}, false
	}
	pct, err := strconv.Atoi(m[2])
	if err != nil || pct > 100 {
		return Status{}, false
	}
	return Status{Rollback: m[1] != "", Percent: pct, Message: m[3]}, true
}

// Messages certificate-manager ends an operation with (reference §4.4,
// §4.5).
const (
	msgAllDone          = "All tasks completed successfully"
	msgRollbackStarted  = "performing automatic rollback"
	msgRollbackDone     = "Rollback completed successfully"
	msgRollbackFailed   = "Error while performing rollback operation"
	msgNoRollbackRemote = "Automatic rollback is not supported"
)

// Progress is what a certificate-manager transcript says about the
// operation.
type Progress struct {
	// Statuses are the progress lines, in order.
	Statuses []Status `json:"statuses"`
	// Completed is true when the operation reached "100% Completed [All
	// tasks completed successfully]" and did not roll back.
	Completed bool `json:"completed"`
	// RolledBack is true when the operation failed and certificate-manager
	// started its automatic rollback.
	RolledBack bool `json:"rolledBack"`
	// RollbackCompleted is true when the rollback said it completed.
	RollbackCompleted bool `json:"rollbackCompleted"`
	// RollbackFailed is true when the rollback failed too, or was not
	// possible (distributed setup).
	RollbackFailed bool `json:"rollbackFailed"`
	// Errors are the lines that report an error, in order.
	Errors []string `json:"errors"`
}

// Last returns the last progress line of the operation itself (not of
// its rollback), or a zero Status.
func (p Progress) Last() Status {
	for i := len(p.Statuses) - 1; i >= 0; i-- {
		s := p.Statuses[i]
		if !s.Rollback && !strings.Contains(s.Message, msgRollbackStarted) {
			return s
		}
	}
	return Status{}
}

// ParseTranscript reads what certificate-manager printed (line breaks as
// a terminal sends them: CR LF, LF, or a lone CR rewriting a line).
func ParseTranscript(text string) Progress {
	p := Progress{Statuses: []Status{}, Errors: []string{}}
	done := false
	for _, line := range strings.Split(normalize(text, true), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if s, ok := ParseStatus(line); ok {
			p.Statuses = append(p.Statuses, s)
			switch {
			case s.Rollback && s.Message == msgRollbackDone:
				p.RollbackCompleted = true
			case !s.Rollback && s.Percent == 100 && s.Message == msgAllDone:
				done = true
			case strings.Contains(s.Message, msgRollbackStarted):
				p.RolledBack = true
			}
			if s.Rollback {
				p.RolledBack = true
			}
			continue
		}
		if strings.Contains(line, msgRollbackStarted) || strings.HasPrefix(line, "Performing rollback of ") {
			p.RolledBack = true
		}
		if strings.Contains(line, msgRollbackFailed) || strings.Contains(line, msgNoRollbackRemote) {
			p.RollbackFailed = true
		}
		if isErrorLine(line) {
			p.Errors = append(p.Errors, line)
		}
	}
	p.Completed = done && !p.RolledBack
	return p
}

// isErrorLine reports whether a line of certificate-manager's console
// reports an error.
func isErrorLine(line string) bool {
	return strings.HasPrefix(line, "Error") || strings.HasPrefix(line, "ERROR") ||
		strings.Contains(line, "certificate-manager Error") || strings.Contains(line, "Operation failed")
}

// ansiEscape matches the terminal control sequences a program may print
// (colors, cursor movement).
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// normalize turns terminal output into text with "\n" line breaks: CR LF
// and LF end a line, a lone CR (a line rewritten in place) starts a new
// one, and control sequences and other control characters but tab are
// dropped. A CR at the very end is dropped unless final is set: it may be
// the first half of a CR LF still in transit, so that normalizing a
// growing buffer never changes the text already normalized.
func normalize(s string, final bool) string {
	if strings.Contains(s, "\x1b") {
		s = ansiEscape.ReplaceAllString(s, "")
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\r':
			switch {
			case i+1 < len(s) && s[i+1] == '\n':
			case i+1 == len(s) && !final:
			default:
				b.WriteByte('\n')
			}
		case c == '\n' || c == '\t' || c >= 0x20 && c != 0x7f:
			b.WriteByte(c)
		}
	}
	return b.String()
}

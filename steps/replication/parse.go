package replication

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Partner is one replication partner as `vdcrepadmin -f showpartnerstatus`
// reports it.
type Partner struct {
	// Partner is the partner's host name.
	Partner string `json:"partner" expr:"partner"`
	// HostAvailable is true when the node could bind to the partner's vmdir.
	HostAvailable bool `json:"hostAvailable" expr:"hostAvailable"`
	// StatusAvailable is true when the node could read the partner's
	// agreement back to it (only checked when the host is available).
	StatusAvailable bool `json:"statusAvailable" expr:"statusAvailable"`
	// MyLastChange is the node's last change number (USN) the partner
	// would consume; 0 when the status is not available.
	MyLastChange int64 `json:"myLastChange" expr:"myLastChange"`
	// PartnerSeen is how far the partner has consumed the node's changes:
	// its agreement's lastLocalUsnProcessed.
	PartnerSeen int64 `json:"partnerSeen" expr:"partnerSeen"`
	// ChangesBehind is how many of the node's changes the partner has not
	// yet consumed; it must be 0, in both directions.
	ChangesBehind int64 `json:"changesBehind" expr:"changesBehind"`
}

// ErrorLine is vdcrepadmin's failure line: "Vdcrepadmin failed. Error
// [<message>] [<code>]".
var ErrorLine = regexp.MustCompile(`Vdcrepadmin failed\. Error \[([^\]]*)\] \[(\d+)\]`)

var (
	behindLine = regexp.MustCompile(`^Partner is (-?\d+) changes? behind\.?$`)
	keyLine    = regexp.MustCompile(`^([A-Za-z][A-Za-z ]*?)\s*:\s*(.*)$`)
)

// ParsePartnerStatus parses the output of `vdcrepadmin -f showpartnerstatus`
// (vcenter-procedures.md §5.1): per partner, separated by blank lines,
//
//	Partner: psc-02.example.com
//	Host available:   Yes
//	Status available: Yes
//	My last change number:             1632
//	Partner has seen my change number: 1632
//	Partner is 0 changes behind.
//
// where a partner whose host is not available has only its first two
// lines and one whose status is not available its first three. The
// "password: " prompt vdcrepadmin prints when it reads the password from
// stdin is skipped; an empty output means no partners. Lines with other
// "Name: value" fields (newer builds print more) are ignored; a failure
// line ("Vdcrepadmin failed. Error [...] [...]"), a field before the first
// Partner line, a value that is not Yes/No or a number, or numbers that
// disagree with the lag are errors.
func ParsePartnerStatus(out string) ([]Partner, error) {
	out = strings.ReplaceAll(out, "\r\n", "\n")
	if m := ErrorLine.FindStringSubmatch(out); m != nil {
		return nil, fmt.Errorf("vdcrepadmin failed: %s (%s)", m[1], m[2])
	}
	var (
		partners []Partner
		cur      *Partner
		seen     map[string]bool
	)
	finish := func() error {
		if cur == nil {
			return nil
		}
		switch {
		case !seen["host"]:
			return fmt.Errorf("partner %s: no Host available line", cur.Partner)
		case cur.HostAvailable && !seen["status"]:
			return fmt.Errorf("partner %s: no Status available line", cur.Partner)
		case cur.StatusAvailable && !(seen["mine"] && seen["seen"]):
			return fmt.Errorf("partner %s: no change numbers", cur.Partner)
		case cur.StatusAvailable && seen["behind"] && cur.ChangesBehind != cur.MyLastChange-cur.PartnerSeen:
			return fmt.Errorf("partner %s: %d changes behind, but %d - %d = %d", cur.Partner,
				cur.ChangesBehind, cur.MyLastChange, cur.PartnerSeen, cur.MyLastChange-cur.PartnerSeen)
		case cur.StatusAvailable && !seen["behind"]:
			cur.ChangesBehind = cur.MyLastChange - cur.PartnerSeen
		}
		partners = append(partners, *cur)
		cur = nil
		return nil
	}
	for i, raw := range strings.Split(out, "\n") {
		line := strings.TrimSpace(raw)
		if i == 0 {
			// The password prompt, with or without the line break the
			// terminal would have echoed.
			if rest, ok := strings.CutPrefix(line, "password:"); ok {
				line = strings.TrimSpace(rest)
			}
		}
		if line == "" {
			continue
		}
		if m := behindLine.FindStringSubmatch(line); m != nil {
			if cur == nil || !cur.StatusAvailable || seen["behind"] {
				return nil, fmt.Errorf("line %d: unexpected %q", i+1, line)
			}
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q: %w", i+1, line, err)
			}
			cur.ChangesBehind, seen["behind"] = n, true
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: unexpected %q", i+1, line)
		}
		key, val := m[1], strings.TrimSpace(m[2])
		if key == "Partner" {
			if err := finish(); err != nil {
				return nil, err
			}
			if val == "" || strings.ContainsAny(val, " \t") {
				return nil, fmt.Errorf("line %d: partner %q is not a host name", i+1, val)
			}
			cur, seen = &Partner{Partner: val}, map[string]bool{}
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: %q before the first Partner line", i+1, line)
		}
		var field string
		switch key {
		case "Host available":
			field = "host"
		case "Status available":
			field = "status"
		case "My last change number":
			field = "mine"
		case "Partner has seen my change number":
			field = "seen"
		default:
			continue // a field this parser does not know
		}
		if seen[field] {
			return nil, fmt.Errorf("line %d: partner %s: %s twice", i+1, cur.Partner, key)
		}
		seen[field] = true
		switch field {
		case "host", "status":
			yes, err := yesNo(val)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", i+1, key, err)
			}
			if field == "host" {
				cur.HostAvailable = yes
			} else {
				if !cur.HostAvailable {
					return nil, fmt.Errorf("line %d: partner %s: a status for a host that is not available", i+1, cur.Partner)
				}
				cur.StatusAvailable = yes
			}
		default:
			if !cur.StatusAvailable {
				return nil, fmt.Errorf("line %d: partner %s: change numbers without a status", i+1, cur.Partner)
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %q is not a number", i+1, key, val)
			}
			if field == "mine" {
				cur.MyLastChange = n
			} else {
				cur.PartnerSeen = n
			}
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return partners, nil
}

func yesNo(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is neither Yes nor No", s)
}

var (
	adminToolState = regexp.MustCompile(`VmDir State is - ([A-Za-z][A-Za-z ]*[A-Za-z])`)
	dirCLIState    = regexp.MustCompile(`Directory Server State: ([A-Za-z][A-Za-z ]*[A-Za-z])(?: \(\d+\))?`)
)

// ParseVmdirState returns the vmdir state that `echo 6 |
// vdcadmintool` ("VmDir State is - Normal") or `dir-cli state get`
// ("Directory Server State: Normal (3)") printed: Normal, Read only,
// Standalone, … It is an error when the output says neither.
func ParseVmdirState(out string) (string, error) {
	for _, re := range []*regexp.Regexp{adminToolState, dirCLIState} {
		if m := re.FindStringSubmatch(out); m != nil {
			return m[1], nil
		}
	}
	for l := range strings.Lines(out) {
		if l = strings.TrimSpace(l); strings.Contains(l, "failed") {
			return "", fmt.Errorf("%s", l)
		}
	}
	return "", fmt.Errorf("no vmdir state in the output")
}

package ldap

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// entryDigest is a SHA-256 of an entry's user attributes, independent of
// attribute order and name case: what a plan relied on, without the values
// (which may be keys).
func entryDigest(e *entry) string {
	if e == nil {
		return "absent"
	}
	attrs := slices.Clone(e.Attrs)
	slices.SortFunc(attrs, func(a, b attr) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	h := sha256.New()
	for _, a := range attrs {
		if isOperationalAttr(a.Name) {
			continue
		}
		h.Write([]byte(strings.ToLower(a.Name)))
		h.Write([]byte{0})
		for _, v := range a.Values {
			h.Write([]byte(hex.EncodeToString(v)))
			h.Write([]byte{1})
		}
		h.Write([]byte{2})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// stateFacts are a plan's facts: the digest of every entry it read, by
// normalized DN.
func stateFacts(want []entry, have []*entry) map[string]string {
	m := make(map[string]string, len(want))
	for i := range want {
		m[normDN(want[i].DN)] = entryDigest(have[i])
	}
	return m
}

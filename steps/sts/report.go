package sts

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"runbook/steps/certinfo"
)

// idmChain is one element of the IDM certificates answer (the IDM REST
// API's CertificateChainDTO): a chain of PEM certificates, leaf first.
type idmChain struct {
	Certificates []struct {
		Encoded string `json:"encoded"`
	} `json:"certificates"`
}

// parseIDM reads the answer of GET /idm/tenant/<domain>/certificates: a JSON
// list of {"certificates": [{"encoded": "<PEM>"}, …]}. Unknown fields are
// ignored; a certificate that does not decode is an error, as it is for
// checksts.py.
func parseIDM(data []byte) ([][]*x509.Certificate, error) {
	var chains []idmChain
	if err := json.Unmarshal(data, &chains); err != nil {
		return nil, fmt.Errorf("parse IDM answer: %w", err)
	}
	out := make([][]*x509.Certificate, 0, len(chains))
	for i, ch := range chains {
		var certs []*x509.Certificate
		for j, c := range ch.Certificates {
			cs, err := certinfo.Decode(c.Encoded)
			if err != nil {
				return nil, fmt.Errorf("parse IDM answer: chain %d, certificate %d: %w", i+1, j+1, err)
			}
			certs = append(certs, cs...)
		}
		out = append(out, certs)
	}
	return out, nil
}

// kind is checksts.py's certificate kind.
type kind int

const (
	leaf kind = iota // has an authority key identifier
	root             // has none
)

// reported is one certificate of a checksts report.
type reported struct {
	sha1     string
	notAfter time.Time
	days     int
}

// checkResult sorts certificates as checksts.py does.
type checkResult struct {
	valid, expired [2][]reported // indexed by kind
}

// check sorts the certificates of chains, each thumbprint once in order of
// appearance, into valid and expired leaves and roots.
func check(chains [][]*x509.Certificate, at time.Time) *checkResult {
	r := &checkResult{}
	seen := map[string]bool{}
	for _, chain := range chains {
		for _, c := range chain {
			d := describe(c, at)
			if seen[d.SHA1] {
				continue
			}
			seen[d.SHA1] = true
			k := root
			if d.Leaf {
				k = leaf
			}
			rep := reported{sha1: d.SHA1, notAfter: c.NotAfter, days: d.DaysLeft}
			if d.Expired {
				r.expired[k] = append(r.expired[k], rep)
			} else {
				r.valid[k] = append(r.valid[k], rep)
			}
		}
	}
	return r
}

// warning is what checksts.py prints after the lists when a certificate
// has expired.
const warning = "\n" +
	"    WARNING! \n" +
	"    You have expired STS certificates.  Please follow the KB corresponding to your OS:\n" +
	"    VCSA:  https://kb.vmware.com/s/article/76719\n" +
	"    Windows:  https://kb.vmware.com/s/article/79263\n" +
	"    \n"

// text is checksts.py's output.
func (r *checkResult) text() string {
	var b strings.Builder
	section := func(title string, lists [2][]reported, line func(reported) string) {
		fmt.Fprintf(&b, "\n%d %s\n================\n", len(lists[leaf])+len(lists[root]), title)
		for _, k := range []kind{leaf, root} {
			name := "LEAF"
			if k == root {
				name = "ROOT"
			}
			fmt.Fprintf(&b, "\n\t%s CERTS:\n\n", name)
			if len(lists[k]) == 0 {
				b.WriteString("\tNone\n")
			}
			for _, c := range lists[k] {
				b.WriteString(line(c))
			}
		}
	}
	section("VALID CERTS", r.valid, func(c reported) string {
		// Python 3's round() rounds half to even.
		years := int(math.RoundToEven(float64(c.days) / 365))
		return fmt.Sprintf("\t[] Certificate %s will expire in %d days (%d years).\n", c.sha1, c.days, years)
	})
	section("EXPIRED CERTS", r.expired, func(c reported) string {
		return fmt.Sprintf("\t[] Certificate: %s expired on %s!\n", c.sha1, c.notAfter.UTC().Format("2006-01-02 15:04:05")+" GMT")
	})
	if len(r.expired[leaf])+len(r.expired[root]) > 0 {
		b.WriteString(warning)
	}
	return b.String()
}

package local

import (
	"context"
	"fmt"
	"time"

	"runbook/engine"
	"runbook/steps/certinfo"
)

// certParseParams are the params of cert.parse.
type certParseParams struct {
	Cert string `yaml:"cert" required:"true" doc:"The certificate(s): PEM (one or several CERTIFICATE blocks, text around them ignored), base64 DER such as a Lookup Service sslTrust (one line, no armor) or a PEM body, or raw DER."`
}

// certParseOutputs are the outputs of cert.parse: every certificate, and
// the first one's fields at top level.
type certParseOutputs struct {
	// Certs describes every certificate, in input order.
	Certs []certinfo.Info `json:"certs" expr:"certs"`
	// Count is len(Certs).
	Count int `json:"count" expr:"count"`

	Subject      string    `json:"subject" expr:"subject"`
	Issuer       string    `json:"issuer" expr:"issuer"`
	Serial       string    `json:"serial" expr:"serial"`
	NotBefore    time.Time `json:"notBefore" expr:"notBefore"`
	NotAfter     time.Time `json:"notAfter" expr:"notAfter"`
	DaysLeft     int       `json:"daysLeft" expr:"daysLeft"`
	Expired      bool      `json:"expired" expr:"expired"`
	SANs         []string  `json:"sans" expr:"sans"`
	IsCA         bool      `json:"isCA" expr:"isCA"`
	IsLeaf       bool      `json:"isLeaf" expr:"isLeaf"`
	SHA1         string    `json:"sha1" expr:"sha1"`
	SHA256       string    `json:"sha256" expr:"sha256"`
	SKID         string    `json:"skid" expr:"skid"`
	AKID         string    `json:"akid" expr:"akid"`
	KeyAlgorithm string    `json:"keyAlgorithm" expr:"keyAlgorithm"`
	KeyUsage     []string  `json:"keyUsage" expr:"keyUsage"`
	ExtKeyUsage  []string  `json:"extKeyUsage" expr:"extKeyUsage"`
	PEM          string    `json:"pem" expr:"pem"`
	Base64       string    `json:"base64" expr:"base64"`
}

var certParseStep = engine.Read[certParseParams, certParseOutputs]{
	Spec: engine.Spec{
		ID:      "cert.parse",
		Summary: "Describe certificates given as PEM, base64 DER (an sslTrust) or DER.",
		Doc: "Outputs `certs`, one entry per certificate, and the first certificate's fields " +
			"at top level. Names are written as `openssl x509 -nameopt RFC2253` writes them " +
			"but with \", \" between RDNs: `CN=vcsa1.lab.test, O=VMware, C=US`. `sha1` and " +
			"`sha256` are in the `AB:CD:…` form `openssl x509 -noout -fingerprint` prints " +
			"(what ls_update_certs.py takes as --fingerprint); `serial`, `skid` and `akid` " +
			"are upper-case hex without colons. `pem` is the certificate rebuilt as KB 2121701 " +
			"Task 1 does (64-column lines between the BEGIN and END lines); `base64` is the " +
			"single-line sslTrust form. `isLeaf` follows checksts (KB 79248): a certificate " +
			"with an authorityKeyIdentifier is a LEAF, else a ROOT. `daysLeft` counts whole " +
			"days to notAfter from when the step runs (negative once `expired`).\n\n" +
			"```yaml\n- id: old\n  uses: cert.parse\n  with: {cert: \"${{ steps.reg.ssl_trust }}\"}\n" +
			"- uses: note\n  with: {message: \"old thumbprint ${{ steps.old.sha1 }}\"}\n```",
	},
	Run: runCertParse,
}

// now is the clock daysLeft and expired are computed with; tests replace it.
var now = time.Now

func runCertParse(_ context.Context, _ *engine.Env, p *certParseParams) (certParseOutputs, error) {
	infos, err := certinfo.ParseAt(p.Cert, now())
	if err != nil {
		return certParseOutputs{}, fmt.Errorf("cert: %w", err)
	}
	f := infos[0]
	return certParseOutputs{
		Certs:        infos,
		Count:        len(infos),
		Subject:      f.Subject,
		Issuer:       f.Issuer,
		Serial:       f.Serial,
		NotBefore:    f.NotBefore,
		NotAfter:     f.NotAfter,
		DaysLeft:     f.DaysLeft,
		Expired:      f.Expired,
		SANs:         f.SANs,
		IsCA:         f.IsCA,
		IsLeaf:       f.IsLeaf,
		SHA1:         f.SHA1,
		SHA256:       f.SHA256,
		SKID:         f.SKID,
		AKID:         f.AKID,
		KeyAlgorithm: f.KeyAlgorithm,
		KeyUsage:     f.KeyUsage,
		ExtKeyUsage:  f.ExtKeyUsage,
		PEM:          f.PEM,
		Base64:       f.Base64,
	}, nil
}

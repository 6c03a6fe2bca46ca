package vcweb

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"testing"
)

// idmChains is the JSON shape checksts.py reads.
type idmChains []struct {
	Certificates []struct {
		Encoded string `json:"encoded"`
	} `json:"certificates"`
}

func httpsClient(t *testing.T, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestIDMCertificates(t *testing.T) {
	ca := newTestCA(t)
	sts1, sts2 := ca.leaf(t, "ssoserverSign"), ca.leaf(t, "ssoserverSign-2")
	chains := [][]*x509.Certificate{{sts1.Leaf, ca.cert}, {sts2.Leaf}}
	n := startNode(t, newMemStore(testSite), Config{
		TrustedChains: func() ([][]*x509.Certificate, error) { return chains, nil },
	})
	c := httpsClient(t, n.ca.pool)
	base := "https://" + n.srv.Addr() + "/idm/tenant/"

	res, err := c.Get(base + "vsphere.local/certificates?scope=TENANT")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %s, content type %q", res.Status, res.Header.Get("Content-Type"))
	}
	var got idmChains
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(chains) {
		t.Fatalf("%d chains, want %d", len(got), len(chains))
	}
	for i, chain := range got {
		if len(chain.Certificates) != len(chains[i]) {
			t.Fatalf("chain %d has %d certificates, want %d", i, len(chain.Certificates), len(chains[i]))
		}
		for j, c := range chain.Certificates {
			block, rest := pem.Decode([]byte(c.Encoded))
			if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("chain %d cert %d is not one PEM certificate: %q", i, j, c.Encoded)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.Equal(chains[i][j]) {
				t.Errorf("chain %d cert %d is %q, want %q", i, j, cert.Subject, chains[i][j].Subject)
			}
		}
	}
}

func TestIDMRequests(t *testing.T) {
	ca := newTestCA(t)
	chain := [][]*x509.Certificate{{ca.cert}}
	tests := []struct {
		name     string
		chains   func() ([][]*x509.Certificate, error)
		method   string
		path     string
		status   int
		wantBody string // exact JSON when status is 200
	}{
		{"upper-case domain", func() ([][]*x509.Certificate, error) { return chain, nil },
			http.MethodGet, "VSPHERE.LOCAL/certificates?scope=TENANT", http.StatusOK, ""},
		{"no chains func", nil, http.MethodGet, "vsphere.local/certificates?scope=TENANT", http.StatusOK, "[]\n"},
		{"no chains", func() ([][]*x509.Certificate, error) { return nil, nil },
			http.MethodGet, "vsphere.local/certificates?scope=TENANT", http.StatusOK, "[]\n"},
		{"external idp scope", func() ([][]*x509.Certificate, error) { return chain, nil },
			http.MethodGet, "vsphere.local/certificates?scope=EXTERNAL_IDP", http.StatusOK, "[]\n"},
		{"missing scope", nil, http.MethodGet, "vsphere.local/certificates", http.StatusBadRequest, ""},
		{"unknown tenant", nil, http.MethodGet, "other.local/certificates?scope=TENANT", http.StatusNotFound, ""},
		{"unknown resource", nil, http.MethodGet, "vsphere.local/users?scope=TENANT", http.StatusNotFound, ""},
		{"post", nil, http.MethodPost, "vsphere.local/certificates?scope=TENANT", http.StatusMethodNotAllowed, ""},
		{"model error", func() ([][]*x509.Certificate, error) { return nil, errors.New("vmdir down") },
			http.MethodGet, "vsphere.local/certificates?scope=TENANT", http.StatusInternalServerError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, newMemStore(testSite), Config{TrustedChains: tt.chains})
			req, err := http.NewRequest(tt.method, "https://"+n.srv.Addr()+"/idm/tenant/"+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := httpsClient(t, n.ca.pool).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", res.StatusCode, body, tt.status)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
}

package vcweb

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
)

// idmPrefix is where the IDM REST tenant resources live.
const idmPrefix = "/idm/tenant/"

// certificateChain is one element of the IDM certificates answer: a chain,
// leaf first (the CertificateChainDTO of the IDM REST API).
type certificateChain struct {
	Certificates []certificate `json:"certificates"`
}

// certificate is one PEM-encoded certificate of a certificateChain (the
// CertificateDTO of the IDM REST API).
type certificate struct {
	Encoded string `json:"encoded"`
}

// idmHandler serves GET /idm/tenant/<domain>/certificates?scope=TENANT with
// the tenant's trusted chains. Like checksts.py expects, it needs no
// authentication. scope=EXTERNAL_IDP is accepted and empty (the lab has no
// external identity providers); any other scope is a bad request.
func idmHandler(cfg Config) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		domain, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, idmPrefix), "/certificates")
		if !ok || !strings.EqualFold(domain, cfg.Domain) {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if cfg.Faults != nil {
			if err := cfg.Faults.Before("idm.certificates"); err != nil {
				if errors.Is(err, ErrDrop) {
					panic(http.ErrAbortHandler)
				}
				http.Error(w, "idm.certificates: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}

		chains := []certificateChain{}
		switch scope := r.URL.Query().Get("scope"); scope {
		case "TENANT":
			if cfg.TrustedChains == nil {
				break
			}
			certs, err := cfg.TrustedChains()
			if err != nil {
				http.Error(w, "read trusted chains: "+err.Error(), http.StatusInternalServerError)
				return
			}
			for _, chain := range certs {
				c := certificateChain{Certificates: make([]certificate, 0, len(chain))}
				for _, cert := range chain {
					block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
					c.Certificates = append(c.Certificates, certificate{Encoded: string(block)})
				}
				chains = append(chains, c)
			}
		case "EXTERNAL_IDP":
		default:
			http.Error(w, "invalid certificate scope "+scope, http.StatusBadRequest)
			return
		}

		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(chains)
	}
}

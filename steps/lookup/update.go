package lookup

import (
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/lookup"
	lmethods "github.com/vmware/govmomi/lookup/methods"
	ltypes "github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/vim25/soap"

	"runbook/engine"
	"runbook/steps/certinfo"
)

// updateParams are the params of lookup.update_ssltrust.
type updateParams struct {
	Node          string `yaml:"node" doc:"The PNID of the node whose Lookup Service is asked; the first node of the target when empty. Registrations are shared by the site, so any node of the site sees them all (with an external PSC, name a PSC of the site, as KB 2121701 says)."`
	OldThumbprint string `yaml:"old_thumbprint" required:"true" doc:"The thumbprint of the certificate the endpoints trust now (KB 2121701 Task 2): SHA-1 as openssl prints it (AB:CD:…), or space-separated as the Windows certificate viewer shows it, or plain hex; invisible characters picked up by copy and paste are ignored. A SHA-256 thumbprint is also accepted."`
	NewCert       string `yaml:"new_cert" required:"true" doc:"The certificate the endpoints are to trust instead (KB 2121701 Task 3, the node's MACHINE_SSL_CERT): PEM or single-line base64 DER. Of a PEM chain only the first certificate is used."`
	URLContains   string `yaml:"url_contains" doc:"Not part of the KB's procedure, which matches by thumbprint alone (the default): when set, an endpoint is re-pointed only if its URL also contains this text, ignoring case (for example one node's PNID)."`
}

// updateOutputs are the outputs of lookup.update_ssltrust.
type updateOutputs struct {
	// Updated is how many services this run set (re-registered).
	Updated int `json:"updated" expr:"updated"`
	// Services are the ids of the services set, in list order.
	Services []string `json:"services" expr:"services"`
	// Endpoints is how many endpoints now trust the new certificate that
	// did not before.
	Endpoints int `json:"endpoints" expr:"endpoints"`
	// Log is what ls_update_certs.py would have printed, one line per
	// service: "Get service <id>", "Update service <id>" or "Don't update
	// service <id>", then "Updated N service(s)".
	Log string `json:"log" expr:"log"`
}

var updateStep = engine.Write[updateParams, updateOutputs]{
	Spec: engine.Spec{
		ID:      "lookup.update_ssltrust",
		Summary: "Re-point the Lookup Service endpoints that trust an old certificate to a new one (ls_update_certs.py).",
		Doc: "KB 2121701 / 322835 Task 4, done through the Lookup Service API with the algorithm of " +
			"ls_update_certs.py: for every registration, the first `sslTrust` of each of its first ten " +
			"endpoints is compared, by thumbprint, with `old_thumbprint`; each matching value is " +
			"replaced by `new_cert`, and each service with a match is set again whole, once. Nothing " +
			"else is touched: URLs, types, attributes, owners, other trust values, other services " +
			"(a third-party registration that trusts another certificate stays as it is). Legacy 5.5 " +
			"registrations (ids `<site>:<uuid>`) are handled the same way.\n\n" +
			"The plan lists each endpoint that would change; it is already in place when no endpoint " +
			"trusts the old certificate and some trust the new one, and it is refused when neither " +
			"is trusted anywhere (a wrong thumbprint). Before any change the backup saves each " +
			"service to be set, whole, as JSON (`registrations.json`; `lookup.Restore` sets them " +
			"back). Apply lists, then gets each service to change right before it sets it (two " +
			"services at a time), skipping services that no longer trust the old certificate, so " +
			"that it can be run again after an interruption; `log` reads like the script's console. " +
			"Check is applied once no endpoint trusts the old certificate.\n\n" +
			"```yaml\n- id: update\n  uses: lookup.update_ssltrust\n  with:\n" +
			"    old_thumbprint: \"${{ steps.old.sha1 }}\"\n    new_cert: \"${{ steps.served.pem }}\"\n```",
	},
	Plan:   planUpdate,
	Backup: backupUpdate,
	Apply:  applyUpdate,
	Check:  checkUpdate,
}

// maxEndpoints is how many endpoints of a service ls_update_certs.py
// examines.
const maxEndpoints = 10

// BackupFile is the name of the file lookup.update_ssltrust's backup
// writes into the step's backup folder.
const BackupFile = "registrations.json"

// trustState is what an endpoint's first trust is, to an update.
type trustState int

const (
	trustsOther trustState = iota
	trustsOld
	trustsNew
)

// seenValue is one distinct sslTrust value, read once.
type seenValue struct {
	state trustState
	info  certinfo.Info // zero when the value is not a certificate
	count int           // endpoints examined with this first trust
}

// job is a checked update request and what it has seen so far.
type job struct {
	old     thumbprint
	oldText string // old as given, normalized to AB:CD:…
	newDER  []byte
	newB64  string
	newInfo certinfo.Info
	url     string // url_contains, lower case
	at      time.Time

	mu     sync.Mutex // guards values, which Apply's workers share
	values map[string]*seenValue
}

// newJob checks the params and decodes the thumbprint and certificate.
func newJob(p *updateParams) (*job, error) {
	old, err := certinfo.ParseThumbprint(p.OldThumbprint)
	if err != nil {
		return nil, fmt.Errorf("old_thumbprint: %w", err)
	}
	certs, err := certinfo.Decode(p.NewCert)
	if err != nil {
		return nil, fmt.Errorf("new_cert: %w", err)
	}
	j := &job{
		old:     old,
		oldText: colonHex(old),
		newDER:  certs[0].Raw,
		newB64:  certinfo.Base64(certs[0].Raw),
		url:     strings.ToLower(p.URLContains),
		at:      now(),
		values:  map[string]*seenValue{},
	}
	j.newInfo = certinfo.Describe(certs[0], j.at)
	if j.old.matches(j.newDER) {
		return nil, fmt.Errorf("new_cert is the certificate old_thumbprint %s names: nothing to re-point", j.oldText)
	}
	return j, nil
}

// colonHex writes b as upper-case hex pairs separated by colons.
func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

// look reads a first sslTrust value, once per distinct value.
func (j *job) look(value string) *seenValue {
	j.mu.Lock()
	defer j.mu.Unlock()
	if v, ok := j.values[value]; ok {
		return v
	}
	v := &seenValue{}
	j.values[value] = v
	der, err := trustDER(value)
	if err != nil {
		return v
	}
	switch {
	case j.old.matches(der):
		v.state = trustsOld
	case string(der) == string(j.newDER):
		v.state = trustsNew
	}
	if c, err := x509.ParseCertificate(der); err == nil {
		v.info = certinfo.Describe(c, j.at)
	} else {
		v.info = certinfo.Info{SHA1: certinfo.Thumbprint(der, crypto.SHA1)}
	}
	return v
}

// scan examines a service as ls_update_certs.py does, the first trust of
// each of its first ten endpoints (those within url_contains), and returns
// the indexes of the endpoints trusting the old certificate and how many
// trust the new one.
func (j *job) scan(info *ltypes.LookupServiceRegistrationInfo) (old []int, trustNew int) {
	for i, ep := range info.ServiceEndpoints {
		if i == maxEndpoints {
			break
		}
		if len(ep.SslTrust) == 0 || !strings.Contains(strings.ToLower(ep.Url), j.url) {
			continue
		}
		v := j.look(ep.SslTrust[0])
		j.mu.Lock()
		v.count++
		j.mu.Unlock()
		switch v.state {
		case trustsOld:
			old = append(old, i)
		case trustsNew:
			trustNew++
		}
	}
	return old, trustNew
}

// hit is a service with endpoints trusting the old certificate.
type hit struct {
	svc int   // index into survey.infos
	eps []int // endpoint indexes
}

// survey is what one list of the registrations says about the update.
type survey struct {
	infos     []ltypes.LookupServiceRegistrationInfo
	hits      []hit
	endpoints int // endpoints trusting the old certificate
	trustNew  int // endpoints trusting the new certificate
}

func (j *job) survey(ctx context.Context, lc *lookup.Client) (*survey, error) {
	infos, err := listAll(ctx, lc, nil)
	if err != nil {
		return nil, err
	}
	s := &survey{infos: infos}
	for i := range infos {
		old, trustNew := j.scan(&infos[i])
		s.trustNew += trustNew
		if len(old) > 0 {
			s.hits = append(s.hits, hit{svc: i, eps: old})
			s.endpoints += len(old)
		}
	}
	return s, nil
}

// matchedEndpoint is one endpoint a plan relies on trusting the old
// certificate.
type matchedEndpoint struct {
	Service  string `json:"service"`
	Endpoint int    `json:"endpoint"`
	SHA1     string `json:"sha1"`
}

// updateFacts are what a plan of lookup.update_ssltrust relied on.
type updateFacts struct {
	Matched  []matchedEndpoint `json:"matched"`
	TrustNew int               `json:"trustNew"`
}

func planUpdate(ctx context.Context, env *engine.Env, p *updateParams) (engine.Plan, error) {
	j, err := newJob(p)
	if err != nil {
		return engine.Plan{}, err
	}
	_, lc, err := client(ctx, env, p.Node)
	if err != nil {
		return engine.Plan{}, err
	}
	s, err := j.survey(ctx, lc)
	if err != nil {
		return engine.Plan{}, err
	}
	facts := updateFacts{Matched: []matchedEndpoint{}, TrustNew: s.trustNew}
	if len(s.hits) == 0 {
		if s.trustNew == 0 {
			return engine.Plan{}, j.nothingMatches()
		}
		return engine.Plan{
			Summary: fmt.Sprintf("no endpoint trusts %s; %d endpoint(s) already trust %s", j.oldText, s.trustNew, j.newInfo.SHA1),
			InPlace: true,
			Facts:   facts,
		}, nil
	}
	after := describe(j.newInfo)
	changes := make([]engine.Change, 0, s.endpoints)
	for _, h := range s.hits {
		info := &s.infos[h.svc]
		for _, e := range h.eps {
			ep := &info.ServiceEndpoints[e]
			before := j.look(ep.SslTrust[0]).info
			changes = append(changes, engine.Change{
				Action: "update",
				Object: fmt.Sprintf("%s endpoint %d %s", info.ServiceId, e+1, ep.Url),
				Before: describe(before),
				After:  after,
			})
			facts.Matched = append(facts.Matched, matchedEndpoint{Service: info.ServiceId, Endpoint: e + 1, SHA1: before.SHA1})
		}
	}
	return engine.Plan{
		Summary: fmt.Sprintf("re-point %d endpoint(s) of %d service(s) from %s to %s",
			s.endpoints, len(s.hits), j.oldText, j.newInfo.SHA1),
		Changes: changes,
		Facts:   facts,
	}, nil
}

// describe is how a plan shows a trusted certificate.
func describe(c certinfo.Info) string {
	if c.Subject == "" {
		return "sslTrust " + c.SHA1
	}
	return fmt.Sprintf("sslTrust %s (%s, notAfter %s)", c.SHA1, c.Subject, c.NotAfter.UTC().Format(time.DateOnly))
}

// nothingMatches explains a thumbprint that no endpoint trusts, listing
// the certificates the examined endpoints do trust.
func (j *job) nothingMatches() error {
	type seen struct {
		info  certinfo.Info
		count int
	}
	byPrint := map[string]*seen{}
	for _, v := range j.values {
		if v.info.SHA1 == "" {
			continue
		}
		s := byPrint[v.info.SHA1]
		if s == nil {
			s = &seen{info: v.info}
			byPrint[v.info.SHA1] = s
		}
		s.count += v.count
	}
	list := make([]*seen, 0, len(byPrint))
	for _, s := range byPrint {
		list = append(list, s)
	}
	slices.SortFunc(list, func(a, b *seen) int {
		return cmp.Or(cmp.Compare(b.count, a.count), cmp.Compare(a.info.SHA1, b.info.SHA1))
	})
	var b strings.Builder
	fmt.Fprintf(&b, "no endpoint trusts the certificate with thumbprint %s, nor the new certificate %s", j.oldText, j.newInfo.SHA1)
	if j.url != "" {
		fmt.Fprintf(&b, " (among endpoints whose URL contains %q)", j.url)
	}
	b.WriteString(": check old_thumbprint (is it the old Machine SSL certificate's SHA-1?)")
	for i, s := range list {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(list)-i)
			break
		}
		sep := ", "
		if i == 0 {
			sep = "; the endpoints trust "
		}
		fmt.Fprintf(&b, "%s%s (%s, %d endpoint(s))", sep, s.info.SHA1, s.info.Subject, s.count)
	}
	return errors.New(b.String())
}

func backupUpdate(ctx context.Context, env *engine.Env, p *updateParams) ([]string, error) {
	j, err := newJob(p)
	if err != nil {
		return nil, err
	}
	_, lc, err := client(ctx, env, p.Node)
	if err != nil {
		return nil, err
	}
	s, err := j.survey(ctx, lc)
	if err != nil {
		return nil, err
	}
	regs := make([]ltypes.LookupServiceRegistrationInfo, len(s.hits))
	for i, h := range s.hits {
		regs[i] = s.infos[h.svc]
	}
	data, err := json.MarshalIndent(regs, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode registrations: %w", err)
	}
	if env.Redact != nil {
		data = []byte(env.Redact(string(data)))
	}
	path := filepath.Join(env.BackupDir, BackupFile)
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("save registrations: %w", err)
	}
	return []string{path}, nil
}

// parallel is how many services Apply gets and sets at once. Each service
// is still got right before it is set, and set once; only different
// services overlap. Two is what the SOAP client keeps connections for
// (net/http's two idle connections per host): more requests at once would
// each open a TLS connection, and take longer.
const parallel = 2

// repoint is what became of one service Apply had to change.
type repoint struct {
	done    chan struct{} // closed when the fields below are final
	tried   bool          // false when Apply stopped before getting to it
	changed bool          // false when the service no longer trusted the old certificate
	eps     int           // endpoints re-pointed
	err     error
}

func applyUpdate(ctx context.Context, env *engine.Env, p *updateParams) (updateOutputs, error) {
	j, err := newJob(p)
	if err != nil {
		return updateOutputs{}, err
	}
	_, lc, err := client(ctx, env, p.Node)
	if err != nil {
		return updateOutputs{}, err
	}
	infos, err := listAll(ctx, lc, nil)
	if err != nil {
		return updateOutputs{}, err
	}

	// The services to change, as listed, each handled by one worker: get
	// it again, re-point its endpoints that still trust the old
	// certificate, set it. The first failure stops new services from
	// being started; those under way finish.
	work := make([]*repoint, len(infos))
	var todo []int
	for i := range infos {
		if old, _ := j.scan(&infos[i]); len(old) > 0 {
			work[i] = &repoint{done: make(chan struct{})}
			todo = append(todo, i)
		}
	}
	jobs := make(chan int)
	stop := make(chan struct{})
	var stopOnce sync.Once
	go func() {
		defer close(jobs)
		for k, i := range todo {
			select {
			case jobs <- i:
				continue
			case <-stop:
			case <-ctx.Done():
			}
			for _, rest := range todo[k:] {
				close(work[rest].done)
			}
			return
		}
	}()
	var wg sync.WaitGroup
	for range min(parallel, len(todo)) {
		wg.Go(func() {
			for i := range jobs {
				r := work[i]
				r.tried = true
				r.changed, r.eps, r.err = j.repoint(ctx, lc, infos[i].ServiceId)
				if r.err != nil {
					stopOnce.Do(func() { close(stop) })
				}
				close(r.done)
			}
		})
	}

	// Report in list order, as each service completes.
	out := updateOutputs{Services: []string{}}
	var log strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&log, format, args...)
		log.WriteByte('\n')
	}
	var errs []error
	for i := range infos {
		id := infos[i].ServiceId
		r := work[i]
		if r == nil {
			line("Don't update service %s", id)
			continue
		}
		<-r.done
		switch {
		case !r.tried:
			continue
		case r.err != nil:
			line("Get service %s", id)
			errs = append(errs, r.err)
		case !r.changed:
			line("Get service %s", id)
			line("Don't update service %s", id)
		default:
			line("Get service %s", id)
			line("Update service %s", id)
			env.Logf("Update service %s (%d endpoint(s))", id, r.eps)
			out.Updated++
			out.Services = append(out.Services, id)
			out.Endpoints += r.eps
		}
	}
	wg.Wait()
	if len(errs) == 0 && ctx.Err() != nil && out.Updated < len(todo) {
		errs = append(errs, fmt.Errorf("update services: %w", ctx.Err()))
	}
	line("Updated %d service(s)", out.Updated)
	out.Log = log.String()
	env.Logf("Updated %d service(s)", out.Updated)
	return out, errors.Join(errs...)
}

// repoint gets service id and, when endpoints of it still trust the old
// certificate, replaces their first trust with the new one and sets the
// service. It reports whether it set the service, and how many endpoints
// it re-pointed.
func (j *job) repoint(ctx context.Context, lc *lookup.Client, id string) (bool, int, error) {
	fresh, err := get(ctx, lc, id)
	if errors.Is(err, errNoService) { // unregistered since the list
		return false, 0, nil
	}
	if err != nil {
		return false, 0, err
	}
	old, _ := j.scan(&fresh)
	if len(old) == 0 { // changed since the list
		return false, 0, nil
	}
	for _, e := range old {
		fresh.ServiceEndpoints[e].SslTrust[0] = j.newB64
	}
	if err := set(ctx, lc, &fresh); err != nil {
		return false, 0, err
	}
	return true, len(old), nil
}

// errNoService is returned for a registration the Lookup Service does not
// have (any more).
var errNoService = errors.New("no such service")

// get reads one registration.
func get(ctx context.Context, lc *lookup.Client, id string) (ltypes.LookupServiceRegistrationInfo, error) {
	res, err := lmethods.Get(ctx, lc, &ltypes.Get{This: *lc.ServiceContent.ServiceRegistration, ServiceId: id})
	if err != nil {
		if soap.IsSoapFault(err) {
			if _, ok := soap.ToSoapFault(err).VimFault().(ltypes.LookupFaultEntryNotFoundFault); ok {
				err = errNoService
			}
		}
		return ltypes.LookupServiceRegistrationInfo{}, fmt.Errorf("get service %s: %w", id, err)
	}
	return res.Returnval, nil
}

// set replaces the mutable part of a registration with info's.
func set(ctx context.Context, lc *lookup.Client, info *ltypes.LookupServiceRegistrationInfo) error {
	req := &ltypes.Set{
		This:        *lc.ServiceContent.ServiceRegistration,
		ServiceId:   info.ServiceId,
		ServiceSpec: ltypes.LookupServiceRegistrationSetSpec{LookupServiceRegistrationMutableServiceInfo: info.LookupServiceRegistrationMutableServiceInfo},
	}
	if _, err := lmethods.Set(ctx, lc, req); err != nil {
		return fmt.Errorf("set service %s: %w", info.ServiceId, err)
	}
	return nil
}

func checkUpdate(ctx context.Context, env *engine.Env, p *updateParams) (engine.Verdict[updateOutputs], error) {
	j, err := newJob(p)
	if err != nil {
		return engine.Verdict[updateOutputs]{}, err
	}
	_, lc, err := client(ctx, env, p.Node)
	if err != nil {
		return engine.Verdict[updateOutputs]{}, err
	}
	s, err := j.survey(ctx, lc)
	if err != nil {
		return engine.Verdict[updateOutputs]{}, err
	}
	switch {
	case len(s.hits) > 0:
		return engine.Verdict[updateOutputs]{
			State: engine.NotApplied,
			Detail: fmt.Sprintf("%d endpoint(s) of %d service(s) still trust %s; %d trust %s",
				s.endpoints, len(s.hits), j.oldText, s.trustNew, j.newInfo.SHA1),
		}, nil
	case s.trustNew == 0:
		return engine.Verdict[updateOutputs]{
			State:  engine.Unknown,
			Detail: fmt.Sprintf("no endpoint trusts either the old certificate %s or the new one %s", j.oldText, j.newInfo.SHA1),
		}, nil
	}
	return engine.Verdict[updateOutputs]{
		State:   engine.Applied,
		Detail:  fmt.Sprintf("no endpoint trusts %s; %d endpoint(s) trust %s", j.oldText, s.trustNew, j.newInfo.SHA1),
		Outputs: updateOutputs{Services: []string{}, Log: "Updated 0 service(s)\n"},
	}, nil
}

// Restore sets back the registrations that lookup.update_ssltrust's backup
// saved in file (its BackupFile), each whole, through the Lookup Service
// client c. It tries every registration and returns the errors of those it
// could not set.
func Restore(ctx context.Context, c *lookup.Client, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("restore registrations: %w", err)
	}
	var regs []ltypes.LookupServiceRegistrationInfo
	if err := json.Unmarshal(data, &regs); err != nil {
		return fmt.Errorf("restore registrations: read %s: %w", file, err)
	}
	var errs []error
	for i := range regs {
		if regs[i].ServiceId == "" {
			errs = append(errs, fmt.Errorf("restore registration %d of %s: no service id", i+1, file))
			continue
		}
		if err := set(ctx, c, &regs[i]); err != nil {
			errs = append(errs, fmt.Errorf("restore registration: %w", err))
		}
	}
	return errors.Join(errs...)
}

package model

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// VECS store names, as `vecs-cli store list` prints them.
const (
	StoreMachineSSL       = "MACHINE_SSL_CERT"
	StoreTrustedRoots     = "TRUSTED_ROOTS"
	StoreTrustedRootCRLs  = "TRUSTED_ROOT_CRLS"
	StoreMachine          = "machine"
	StoreWebClient        = "vsphere-webclient"
	StoreVpxd             = "vpxd"
	StoreVpxdExtension    = "vpxd-extension"
	StoreDataEncipherment = "data-encipherment"
	StoreSMS              = "SMS"
	StoreBackup           = "BACKUP_STORE"
)

// VECS aliases with fixed names.
const (
	// AliasMachineCert is the Machine SSL entry in MACHINE_SSL_CERT.
	AliasMachineCert = "__MACHINE_CERT"
	// AliasSMS is the SMS self-signed entry.
	AliasSMS = "sms_self_signed"
	// BackupPrefix starts every BACKUP_STORE alias: bkp___MACHINE_CERT, bkp_vpxd.
	BackupPrefix = "bkp_"
)

// SolutionUsers are the solution-user stores of a node; each store's single
// entry has the store's name as alias, and each has a service principal
// cn=<store>-<machineID> in vmdir.
var SolutionUsers = []string{StoreMachine, StoreWebClient, StoreVpxd, StoreVpxdExtension}

// EntryType is the kind of a VECS entry, spelled as vecs-cli prints it.
type EntryType string

// VECS entry types.
const (
	PrivateKey  EntryType = "Private Key"
	TrustedCert EntryType = "Trusted Cert"
	SecretKey   EntryType = "Secret Key"
	CRL         EntryType = "Certification Revocation List"
)

// Errors returned by VECS; match them with errors.Is.
var (
	ErrNoStore     = errors.New("store does not exist")
	ErrStoreExists = errors.New("store already exists")
	ErrNoEntry     = errors.New("entry does not exist")
	ErrEntryExists = errors.New("alias already exists")
)

// Entry is one VECS entry.
type Entry struct {
	// Alias names the entry within its store.
	Alias string
	// Type is the entry's kind.
	Type EntryType
	// Certs are DER certificates, leaf first (a Private Key entry may carry
	// its chain; a Trusted Cert entry has exactly one).
	Certs [][]byte
	// Key is the private key as PKCS#8 DER (Private Key entries), or the
	// secret (Secret Key entries).
	Key []byte
	// CRL is the DER revocation list of a CRL entry.
	CRL []byte
}

// Clone returns a deep copy of e.
func (e Entry) Clone() Entry {
	c := e
	c.Certs = make([][]byte, len(e.Certs))
	for i, d := range e.Certs {
		c.Certs[i] = bytes.Clone(d)
	}
	c.Key = bytes.Clone(e.Key)
	c.CRL = bytes.Clone(e.CRL)
	return c
}

// Cert returns the entry's first certificate (the leaf), or nil.
func (e Entry) Cert() []byte {
	if len(e.Certs) == 0 {
		return nil
	}
	return e.Certs[0]
}

type store struct {
	name    string
	entries []Entry // in creation order, as vecs-cli lists them
}

// VECS is a node's VMware Endpoint Certificate Store. It is safe for
// concurrent use and never calls out of itself while locked; results are
// copies the caller may keep.
type VECS struct {
	mu     sync.Mutex
	stores []*store
}

// NewVECS returns a VECS with the given empty stores.
func NewVECS(stores ...string) *VECS {
	v := &VECS{}
	for _, s := range stores {
		v.stores = append(v.stores, &store{name: s})
	}
	return v
}

func (v *VECS) find(name string) (*store, error) {
	for _, s := range v.stores {
		if s.name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("store %s: %w", name, ErrNoStore)
}

// StoreNames returns the store names in creation order.
func (v *VECS) StoreNames() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	names := make([]string, len(v.stores))
	for i, s := range v.stores {
		names[i] = s.name
	}
	return names
}

// CreateStore adds an empty store.
func (v *VECS) CreateStore(name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if name == "" {
		return errors.New("create store: empty name")
	}
	if _, err := v.find(name); err == nil {
		return fmt.Errorf("create store %s: %w", name, ErrStoreExists)
	}
	v.stores = append(v.stores, &store{name: name})
	return nil
}

// DeleteStore removes a store and its entries.
func (v *VECS) DeleteStore(name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, s := range v.stores {
		if s.name == name {
			v.stores = slices.Delete(v.stores, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("delete store %s: %w", name, ErrNoStore)
}

// Entries returns copies of a store's entries in creation order.
func (v *VECS) Entries(storeName string) ([]Entry, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, err := v.find(storeName)
	if err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	out := make([]Entry, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.Clone()
	}
	return out, nil
}

// Get returns a copy of one entry.
func (v *VECS) Get(storeName, alias string) (Entry, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, err := v.find(storeName)
	if err != nil {
		return Entry{}, fmt.Errorf("get entry: %w", err)
	}
	for _, e := range s.entries {
		if e.Alias == alias {
			return e.Clone(), nil
		}
	}
	return Entry{}, fmt.Errorf("get entry %s in %s: %w", alias, storeName, ErrNoEntry)
}

// Create adds an entry; the alias must be new in the store.
func (v *VECS) Create(storeName string, e Entry) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.create(storeName, e)
}

func (v *VECS) create(storeName string, e Entry) error {
	s, err := v.find(storeName)
	if err != nil {
		return fmt.Errorf("create entry: %w", err)
	}
	if e.Alias == "" {
		return fmt.Errorf("create entry in %s: empty alias", storeName)
	}
	if err := e.validate(); err != nil {
		return fmt.Errorf("create entry %s in %s: %w", e.Alias, storeName, err)
	}
	for _, x := range s.entries {
		if x.Alias == e.Alias {
			return fmt.Errorf("create entry %s in %s: %w", e.Alias, storeName, ErrEntryExists)
		}
	}
	s.entries = append(s.entries, e.Clone())
	return nil
}

func (e Entry) validate() error {
	switch e.Type {
	case PrivateKey:
		if len(e.Certs) == 0 || len(e.Key) == 0 {
			return errors.New("a private key entry needs a certificate and a key")
		}
	case TrustedCert:
		if len(e.Certs) != 1 {
			return errors.New("a trusted cert entry needs exactly one certificate")
		}
	case SecretKey:
		if len(e.Key) == 0 {
			return errors.New("a secret key entry needs a secret")
		}
	case CRL:
		if len(e.CRL) == 0 {
			return errors.New("a crl entry needs a crl")
		}
	default:
		return fmt.Errorf("unknown entry type %q", e.Type)
	}
	return nil
}

// Delete removes an entry.
func (v *VECS) Delete(storeName, alias string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.delete(storeName, alias)
}

func (v *VECS) delete(storeName, alias string) error {
	s, err := v.find(storeName)
	if err != nil {
		return fmt.Errorf("delete entry: %w", err)
	}
	for i, e := range s.entries {
		if e.Alias == alias {
			s.entries = slices.Delete(s.entries, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("delete entry %s in %s: %w", alias, storeName, ErrNoEntry)
}

// Backup copies entry alias of storeName into BACKUP_STORE as
// "bkp_<alias>" (so __MACHINE_CERT becomes bkp___MACHINE_CERT), replacing
// the previous backup of that alias: like certificate-manager, VECS keeps a
// single generation. BACKUP_STORE is created if missing.
func (v *VECS) Backup(storeName, alias string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, err := v.find(storeName)
	if err != nil {
		return fmt.Errorf("back up entry: %w", err)
	}
	var src *Entry
	for i := range s.entries {
		if s.entries[i].Alias == alias {
			src = &s.entries[i]
		}
	}
	if src == nil {
		return fmt.Errorf("back up entry %s in %s: %w", alias, storeName, ErrNoEntry)
	}
	if _, err := v.find(StoreBackup); err != nil {
		v.stores = append(v.stores, &store{name: StoreBackup})
	}
	bkp := src.Clone()
	bkp.Alias = BackupAlias(alias)
	if err := v.delete(StoreBackup, bkp.Alias); err != nil && !errors.Is(err, ErrNoEntry) {
		return fmt.Errorf("back up entry %s: %w", alias, err)
	}
	if err := v.create(StoreBackup, bkp); err != nil {
		return fmt.Errorf("back up entry %s: %w", alias, err)
	}
	return nil
}

// BackupAlias returns the BACKUP_STORE alias under which Backup keeps alias.
func BackupAlias(alias string) string { return BackupPrefix + alias }

// Replace deletes the entry with e's alias, if any, and creates e, in one
// step under the store's lock.
func (v *VECS) Replace(storeName string, e Entry) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.delete(storeName, e.Alias); err != nil && !errors.Is(err, ErrNoEntry) {
		return fmt.Errorf("replace entry: %w", err)
	}
	if err := v.create(storeName, e); err != nil {
		return fmt.Errorf("replace entry: %w", err)
	}
	return nil
}

package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
)

// KeyBits is the size of every RSA key the lab generates, as VMCA uses.
const KeyBits = 2048

// KeyPool is a process-wide, growing list of RSA keys that are generated on
// first use and then kept for the life of the process.
//
// Generating an RSA-2048 key costs 40–100 ms of CPU, and a two-node lab
// needs about twenty of them, so every lab built in one process draws its
// keys from the same pool through its own KeySeq: the keys within one lab are
// all distinct, and the second and later labs in a process (every test after
// the first) cost no key generation at all. Keys are generated in parallel,
// one goroutine per CPU, when a caller asks for more than exist.
//
// A pool may also keep its keys on disk (see NewKeyPool and KeyCacheEnv),
// so that the first lab of a process reads its keys instead of generating
// them; Pool does so by default.
//
// The pool trades uniqueness across labs for speed; it is meant for the
// simulated appliance only. Use Fresh for a key that no one else holds.
type KeyPool struct {
	mu      sync.Mutex
	slots   []*keySlot
	dirOnce sync.Once
	dirFunc func() string
	dir     string
}

type keySlot struct {
	once sync.Once
	key  *rsa.PrivateKey
	err  error
}

// NewKeyPool returns an empty pool. When dir is not empty the pool keeps
// its i-th key in dir/key-<i>.der (PKCS#8, mode 0600) and reads it back
// instead of generating it, in this and later processes.
func NewKeyPool(dir string) *KeyPool {
	return &KeyPool{dirFunc: func() string { return dir }}
}

// KeyCacheEnv names the environment variable that controls where Pool
// keeps its keys on disk: a directory, or "off" for no disk cache. Unset,
// Pool uses runbook-lab/rsa2048 under the user's cache directory
// (os.UserCacheDir), like the Go build cache. The keys there are lab keys:
// every lab on the machine shares them.
const KeyCacheEnv = "RUNBOOK_LAB_KEY_CACHE"

// Pool is the process-wide key pool every lab uses; see KeyCacheEnv.
var Pool = &KeyPool{dirFunc: defaultCacheDir}

func defaultCacheDir() string {
	switch v := os.Getenv(KeyCacheEnv); v {
	case "off":
		return ""
	case "":
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		return filepath.Join(base, "runbook-lab", "rsa2048")
	default:
		return v
	}
}

// CacheDir returns the directory the pool keeps its keys in, or "".
func (p *KeyPool) CacheDir() string {
	p.dirOnce.Do(func() {
		if p.dirFunc != nil {
			p.dir = p.dirFunc()
		}
	})
	return p.dir
}

func (p *KeyPool) slot(i int) *keySlot {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.slots) <= i {
		p.slots = append(p.slots, &keySlot{})
	}
	return p.slots[i]
}

func (s *keySlot) get(dir string, i int) (*rsa.PrivateKey, error) {
	s.once.Do(func() {
		var file string
		if dir != "" {
			file = filepath.Join(dir, fmt.Sprintf("key-%04d.der", i))
			if k := readKey(file); k != nil {
				s.key = k
				return
			}
		}
		s.key, s.err = Fresh()
		if s.err == nil && file != "" {
			// The cache is an optimization: a failed write costs only time.
			_ = writeKey(file, s.key)
		}
	})
	return s.key, s.err
}

// readKey returns the RSA key of KeyBits bits in file, or nil.
func readKey(file string) *rsa.PrivateKey {
	der, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != KeyBits {
		return nil
	}
	return rk
}

// writeKey stores k in file atomically, so that concurrent processes never
// read a partial key.
func writeKey(file string, k *rsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(der); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// Key returns the i-th key of the pool, reading it from the cache
// directory or generating it if needed.
func (p *KeyPool) Key(i int) (*rsa.PrivateKey, error) {
	if i < 0 {
		return nil, fmt.Errorf("key index %d is negative", i)
	}
	return p.slot(i).get(p.CacheDir(), i)
}

// Fill makes sure keys from..from+n-1 exist, generating the missing ones in
// parallel with one goroutine per CPU. It returns the first error.
func (p *KeyPool) Fill(from, n int) error {
	if n <= 0 {
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	next.Store(int64(from))
	errs := make(chan error, workers)
	for range workers {
		go func() {
			var first error
			for {
				i := int(next.Add(1) - 1)
				if i >= from+n {
					break
				}
				if _, err := p.Key(i); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Len returns how many keys the pool has handed out slots for so far.
func (p *KeyPool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.slots)
}

// Seq returns a new sequence over the pool that starts at its first key.
func (p *KeyPool) Seq() *KeySeq {
	return &KeySeq{pool: p}
}

// KeySeq hands out the keys of a KeyPool in order, each at most once.
// One lab uses one KeySeq, so all its keys are distinct. It is safe for
// concurrent use.
type KeySeq struct {
	pool *KeyPool
	next atomic.Int64
}

// Next returns the next key of the sequence.
func (s *KeySeq) Next() (*rsa.PrivateKey, error) {
	return s.pool.Key(int(s.next.Add(1) - 1))
}

// Prefetch generates the next n keys of the sequence in parallel, so that
// the following n calls of Next return at once.
func (s *KeySeq) Prefetch(n int) error {
	return s.pool.Fill(int(s.next.Load()), n)
}

// Fresh generates a new RSA key that belongs to no pool.
func Fresh() (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate rsa key: %w", err)
	}
	return k, nil
}

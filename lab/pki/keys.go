package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
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
// The pool trades uniqueness across labs for speed; it is meant for the
// simulated appliance only. Use Fresh for a key that no one else holds.
type KeyPool struct {
	mu    sync.Mutex
	slots []*keySlot
}

type keySlot struct {
	once sync.Once
	key  *rsa.PrivateKey
	err  error
}

// Pool is the process-wide key pool every lab uses.
var Pool = &KeyPool{}

func (p *KeyPool) slot(i int) *keySlot {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.slots) <= i {
		p.slots = append(p.slots, &keySlot{})
	}
	return p.slots[i]
}

func (s *keySlot) get() (*rsa.PrivateKey, error) {
	s.once.Do(func() {
		s.key, s.err = rsa.GenerateKey(rand.Reader, KeyBits)
		if s.err != nil {
			s.err = fmt.Errorf("generate rsa key: %w", s.err)
		}
	})
	return s.key, s.err
}

// Key returns the i-th key of the pool, generating it if needed.
func (p *KeyPool) Key(i int) (*rsa.PrivateKey, error) {
	if i < 0 {
		return nil, fmt.Errorf("key index %d is negative", i)
	}
	return p.slot(i).get()
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

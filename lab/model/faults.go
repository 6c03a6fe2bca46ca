package model

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Protocols the lab's servers serve, as fault-injection keys.
const (
	ProtoLDAP  = "ldap"
	ProtoHTTPS = "https"
	ProtoSSH   = "ssh"
)

// Errors Faults.Before returns; servers match them with errors.Is.
var (
	// ErrDropped tells a server to drop the connection without answering.
	ErrDropped = errors.New("injected fault: connection dropped")
	// ErrInjectedWrite tells a server to fail a write with a server error.
	ErrInjectedWrite = errors.New("injected fault: write failed")
)

// writeOps are the operation names Before counts as writes, compared
// case-insensitively. Servers pass their own operation names (LDAP add,
// HTTP PUT, SOAP Set, SFTP rename …) or "write" for any other mutation.
var writeOps = map[string]bool{
	"write": true, "add": true, "modify": true, "delete": true, "modrdn": true, "moddn": true,
	"put": true, "post": true, "patch": true, "set": true, "create": true, "register": true,
	"unregister": true, "remove": true, "rename": true, "mkdir": true, "rmdir": true,
	"setstat": true, "symlink": true, "link": true,
}

// IsWrite reports whether Before treats op as a write.
func IsWrite(op string) bool { return writeOps[strings.ToLower(op)] }

type protoFaults struct {
	drop      int
	failWrite int
	delay     time.Duration
}

// Faults injects failures into the lab's servers. Tests arm a fault; every
// server calls Before at the start of each operation and obeys its answer.
// The zero value injects nothing. It is safe for concurrent use.
type Faults struct {
	mu     sync.Mutex
	protos map[string]*protoFaults
}

func (f *Faults) get(proto string) *protoFaults {
	if f.protos == nil {
		f.protos = map[string]*protoFaults{}
	}
	p := f.protos[proto]
	if p == nil {
		p = &protoFaults{}
		f.protos[proto] = p
	}
	return p
}

// DropNext makes the next operation of proto, of any kind, return ErrDropped.
// Calls accumulate: two calls drop the next two operations.
func (f *Faults) DropNext(proto string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get(proto).drop++
}

// FailNextWrite makes the next write operation of proto return
// ErrInjectedWrite. Calls accumulate.
func (f *Faults) FailNextWrite(proto string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get(proto).failWrite++
}

// Delay makes every operation of proto wait d before it proceeds, until
// Delay is called again; zero removes the delay.
func (f *Faults) Delay(proto string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get(proto).delay = d
}

// Reset removes every armed fault.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.protos = nil
}

// Before is called by a server before operation op of proto. It sleeps for
// any configured delay, then returns ErrDropped or ErrInjectedWrite (wrapped
// with the operation) if such a fault is armed, consuming it, or nil.
func (f *Faults) Before(proto, op string) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	p := f.get(proto)
	delay := p.delay
	var err error
	switch {
	case p.drop > 0:
		p.drop--
		err = ErrDropped
	case p.failWrite > 0 && IsWrite(op):
		p.failWrite--
		err = ErrInjectedWrite
	}
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", proto, op, err)
	}
	return nil
}

package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// LockInfo is what a lock file says about the run holding it.
type LockInfo struct {
	// Key is the rendered `lock:` of the runbook, e.g. "sso:vsphere.local".
	Key string `json:"key"`
	// PID, Host and User say which process holds the lock, where, for whom.
	PID  int    `json:"pid"`
	Host string `json:"host"`
	User string `json:"user"`
	// RunID is the holding run.
	RunID string `json:"run"`
	// Since is when the run took the lock.
	Since time.Time `json:"since"`
}

// runLock is a held lock: an open lock file with an exclusive flock on it.
// The kernel drops the flock when the holder dies, so a lock file whose
// flock is free but which still names a holder was left by a dead process.
type runLock struct {
	f    *os.File
	info LockInfo
}

// lockPath returns the lock file for key under the state dir. Keys are
// hashed so that any text makes a safe file name.
func lockPath(stateDir, key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(stateDir, "locks", hex.EncodeToString(sum[:16])+".lock")
}

// acquireLock takes the lock for me.Key without waiting. It returns a
// LockHeldError when a live process holds it, and the previous holder's info
// when the lock file was left behind by a dead process.
func acquireLock(stateDir string, me LockInfo) (*runLock, *LockInfo, error) {
	path := lockPath(stateDir, me.Key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("create lock dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open lock %s: %w", me.Key, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			held := &LockHeldError{Key: me.Key}
			if info, ok := readLockInfo(f); ok {
				held.Holder = info
			}
			return nil, nil, held
		}
		return nil, nil, fmt.Errorf("lock %s: %w", me.Key, err)
	}
	var stale *LockInfo
	if info, ok := readLockInfo(f); ok {
		stale = &info
	}
	b, _ := json.Marshal(me) // LockInfo always encodes
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("write lock %s: %w", me.Key, err)
	}
	return &runLock{f: f, info: me}, stale, nil
}

// readLockInfo reads the holder from a lock file; ok is false when the file
// is empty (released cleanly) or unreadable.
func readLockInfo(f *os.File) (LockInfo, bool) {
	var info LockInfo
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<16))
	if err != nil || len(b) == 0 || json.Unmarshal(b, &info) != nil {
		return LockInfo{}, false
	}
	return info, true
}

// release empties the lock file and drops the flock. The file is never
// removed: a process waiting on the old inode would then lock a file
// nobody else can see.
func (l *runLock) release() error {
	if l == nil {
		return nil
	}
	terr := l.f.Truncate(0)
	cerr := l.f.Close() // closing drops the flock
	if terr != nil {
		return fmt.Errorf("release lock %s: %w", l.info.Key, terr)
	}
	if cerr != nil {
		return fmt.Errorf("release lock %s: %w", l.info.Key, cerr)
	}
	return nil
}

// who describes this process for journals and lock files.
type who struct {
	PID  int
	Host string
	User string
}

var (
	whoOnce sync.Once
	whoMe   who
)

func me() who {
	whoOnce.Do(func() {
		whoMe.PID = os.Getpid()
		whoMe.Host, _ = os.Hostname()
		if u, err := user.Current(); err == nil {
			whoMe.User = u.Username
		} else {
			whoMe.User = os.Getenv("USER")
		}
	})
	return whoMe
}

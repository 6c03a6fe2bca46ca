package engine

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

const lockRunbook = `
lock: "sso:${{ facts.domain }}"
steps:
  - id: put
    uses: file.write
    with: {path: a, content: A}
`

func TestLockHeldByAnotherProcess(t *testing.T) {
	h := newHarness(t)
	rb := load(t, h.w, lockRunbook)
	pid, kill := helper(t, "RT_HELPER=lock", "RT_STATE="+h.state, "RT_KEY=sso:vsphere.local")

	res, err := h.runner().Run(t.Context(), rb, nil)
	var held *LockHeldError
	if !errors.As(err, &held) || ExitCode(err) != ExitLockHeld {
		t.Fatalf("err = %v, want lock held", err)
	}
	w := me()
	want := fmt.Sprintf("lock sso:vsphere.local is held by run helper-run (pid %d on %s, user %s) since ", pid, w.Host, w.User)
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error:\n got %q\nwant prefix %q", err, want)
	}
	if _, ok := h.w.read("a"); ok || res.Status != RunLocked {
		t.Errorf("status %s: the run went on without the lock", res.Status)
	}

	// The holder dies without releasing: its lock file stays, the flock goes.
	kill()
	h.progress.Reset()
	res, err = h.runner().Run(t.Context(), rb, nil)
	if err != nil {
		t.Fatalf("run after the holder died: %v", err)
	}
	stale := fmt.Sprintf("lock sso:vsphere.local: took stale lock left by run helper-run (pid %d on %s", pid, w.Host)
	if !strings.Contains(h.progress.String(), stale) {
		t.Errorf("progress does not report the stale lock:\n%s", h.progress.String())
	}
	recs := h.journal(res.RunID)
	if !contains(types(recs), "lock") {
		t.Errorf("journal lacks the lock record: %q", types(recs))
	}
	// Released cleanly: the file is empty, so the next run sees no stale lock.
	if b, err := os.ReadFile(lockPath(h.state, "sso:vsphere.local")); err != nil || len(b) != 0 {
		t.Errorf("lock file after release = %q, %v", b, err)
	}
	h.progress.Reset()
	if _, err := h.runner().Run(t.Context(), rb, nil); err != nil || strings.Contains(h.progress.String(), "stale") {
		t.Errorf("third run: %v\n%s", err, h.progress.String())
	}
}

func TestLockInProcess(t *testing.T) {
	dir := t.TempDir()
	info := LockInfo{Key: "k", PID: 1, Host: "h", User: "u", RunID: "r1", Since: time.Unix(0, 0)}
	l, stale, err := acquireLock(dir, info)
	if err != nil || stale != nil {
		t.Fatalf("first lock: %v, stale %v", err, stale)
	}
	info2 := info
	info2.RunID = "r2"
	if _, _, err := acquireLock(dir, info2); !errors.As(err, new(*LockHeldError)) {
		t.Fatalf("second lock: %v, want held", err)
	} else if !strings.Contains(err.Error(), "held by run r1 (pid 1 on h, user u)") {
		t.Errorf("second lock: %v", err)
	}
	other := info
	other.Key = "other"
	l2, _, err := acquireLock(dir, other)
	if err != nil {
		t.Fatalf("a different key: %v", err)
	}
	l2.release()
	if err := l.release(); err != nil {
		t.Fatal(err)
	}
	l3, stale, err := acquireLock(dir, info2)
	if err != nil || stale != nil {
		t.Fatalf("after release: %v, stale %v", err, stale)
	}
	l3.release()
}

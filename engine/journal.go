package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// JournalFile is the name of a run's journal inside its folder.
const JournalFile = "journal.jsonl"

// RecordType names a journal record.
type RecordType string

// The journal record types, in the order a run writes them.
const (
	// RecRunStart opens the journal: runbook, target, params (no secrets), who and where.
	RecRunStart RecordType = "run-start"
	// RecResume marks a resume of the run, with who and where.
	RecResume RecordType = "resume"
	// RecGuard is a runbook guard that refused the run.
	RecGuard RecordType = "guard"
	// RecLock says which lock the run took, and whether it was stale.
	RecLock RecordType = "lock"
	// RecPlanVerified says a saved plan was checked against fresh facts.
	RecPlanVerified RecordType = "plan-verified"
	// RecStepStart is a step about to run.
	RecStepStart RecordType = "step-start"
	// RecPlan is a write step's plan.
	RecPlan RecordType = "plan"
	// RecIntent is a write step about to change the target; it is durable
	// before the step backs up or applies anything.
	RecIntent RecordType = "intent"
	// RecBackup lists the files a write step backed up.
	RecBackup RecordType = "backup"
	// RecDone is a step that completed, with its outputs (secrets masked). A
	// write step's done record is durable before the next step starts.
	RecDone RecordType = "done"
	// RecSkipped is a step whose `when` was false.
	RecSkipped RecordType = "skipped"
	// RecPlanned is a write or interactive step a dry-run only planned.
	RecPlanned RecordType = "planned"
	// RecFailed is a step that failed.
	RecFailed RecordType = "failed"
	// RecRefused is a step whose `require` was false.
	RecRefused RecordType = "refused"
	// RecAssertFailed is a step whose `assert` was false.
	RecAssertFailed RecordType = "assert-failed"
	// RecUnknown is an interrupted write step that Check cannot judge on resume.
	RecUnknown RecordType = "unknown"
	// RecRunEnd closes the run (or this resume of it) with its status.
	RecRunEnd RecordType = "run-end"
)

// Record is one line of a run's journal. Which fields are set depends on Type.
type Record struct {
	Time time.Time  `json:"time"`
	Type RecordType `json:"type"`
	// Step and Index (1-based) name the step of a step record.
	Step   string `json:"step,omitempty"`
	Index  int    `json:"index,omitempty"`
	Effect Effect `json:"effect,omitempty"`
	// Attempt counts tries of a done or failed step.
	Attempt int    `json:"attempt,omitempty"`
	Message string `json:"message,omitempty"`
	// Outputs are a done step's outputs as JSON, secrets masked.
	Outputs json.RawMessage `json:"outputs,omitempty"`
	// Plan is a write step's plan.
	Plan *Plan `json:"plan,omitempty"`
	// Backups are the backed-up files, relative to the run folder.
	Backups []string `json:"backups,omitempty"`
	// Status is the run's status in a run-end record.
	Status RunStatus `json:"status,omitempty"`

	// Runbook identifies the runbook in a run-start record.
	Runbook *RunbookRef `json:"runbook,omitempty"`
	// Target is the target's name in a run-start record.
	Target string `json:"target,omitempty"`
	// Params are the bound params without secrets in a run-start record.
	Params map[string]any `json:"params,omitempty"`
	// DryRun marks a dry-run in a run-start record.
	DryRun bool `json:"dryRun,omitempty"`
	// Lock is the lock of a lock record.
	Lock *LockInfo `json:"lock,omitempty"`
	// PID, Host and User say who wrote a run-start or resume record.
	PID  int    `json:"pid,omitempty"`
	Host string `json:"host,omitempty"`
	User string `json:"user,omitempty"`
}

// RunbookRef identifies a runbook file in journals and plans.
type RunbookRef struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

// journal appends records to a run's journal file. Records are buffered;
// a durable append flushes and fsyncs everything buffered so far, so the
// buffered records ride along with the next durable one. The journal holds
// an exclusive flock on its file while open, which tells other processes that
// the run is live.
type journal struct {
	f      *os.File
	w      *bufio.Writer
	redact *Redactor
	clock  func() time.Time
	err    error // first write error, reported by the next sync
}

// createJournal creates the journal of a new run.
func createJournal(path string, redact *Redactor, clock func() time.Time) (*journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock journal: %w", err)
	}
	return &journal{f: f, w: bufio.NewWriterSize(f, 64<<10), redact: redact, clock: clock}, nil
}

// errRunLive says another process has the run's journal open.
var errRunLive = errors.New("run is still in progress in another process")

// openJournal opens an existing journal for appending and returns its
// records. A torn last line left by a crash mid-write is cut off first. It
// fails with errRunLive when another process holds the journal.
func openJournal(path string, redact *Redactor, clock func() time.Time) (*journal, []Record, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open journal: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, errRunLive
		}
		return nil, nil, fmt.Errorf("lock journal: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read journal: %w", err)
	}
	recs, good, err := parseJournal(data)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	if good != len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("cut torn journal line: %w", err)
		}
	}
	return &journal{f: f, w: bufio.NewWriterSize(f, 64<<10), redact: redact, clock: clock}, recs, nil
}

// journalError is a journal that cannot be written: the run stops, since
// it could not resume what it did next.
type journalError struct{ err error }

func (e *journalError) Error() string { return e.err.Error() }
func (e *journalError) Unwrap() error { return e.err }

// add appends r, stamping its time. A durable add returns only once r and
// everything before it is on disk.
func (j *journal) add(r *Record, durable bool) error {
	if r.Time.IsZero() {
		r.Time = j.clock().UTC()
	}
	// The message is masked before encoding too, for a secret that an
	// error message quoted and that JSON would escape a second time.
	r.Message = j.redact.String(r.Message)
	b, err := j.redact.marshal(r)
	if err != nil {
		return &journalError{fmt.Errorf("encode journal record: %w", err)}
	}
	b = append(b, '\n')
	if _, err := j.w.Write(b); err != nil && j.err == nil {
		j.err = &journalError{fmt.Errorf("write journal: %w", err)}
	}
	if durable {
		return j.sync()
	}
	return nil
}

// sync writes buffered records and fsyncs the file.
func (j *journal) sync() error {
	if err := j.w.Flush(); err != nil && j.err == nil {
		j.err = &journalError{fmt.Errorf("write journal: %w", err)}
	}
	if j.err != nil {
		return j.err
	}
	if err := j.f.Sync(); err != nil {
		j.err = &journalError{fmt.Errorf("sync journal: %w", err)}
	}
	return j.err
}

// close syncs the journal and releases it.
func (j *journal) close() error {
	err := j.sync()
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close journal: %w", cerr)
	}
	return err
}

// ReadJournal reads the records of the journal at path. A torn last line,
// left by a crash in the middle of a write, is ignored; a bad line followed
// by good ones is an error.
func ReadJournal(path string) ([]Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	recs, _, err := parseJournal(data)
	if err != nil {
		return nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	return recs, nil
}

// parseJournal decodes the lines of data. It returns the records, the
// length of the prefix they came from, and an error for a bad line that is
// not the torn tail.
func parseJournal(data []byte) ([]Record, int, error) {
	var recs []Record
	off := 0
	for line := 1; off < len(data); line++ {
		end := bytes.IndexByte(data[off:], '\n')
		var raw []byte
		if end < 0 {
			raw = data[off:]
		} else {
			raw = data[off : off+end]
		}
		var r Record
		if err := json.Unmarshal(raw, &r); err != nil || end < 0 {
			if isTornTail(data[off:]) {
				return recs, off, nil
			}
			if err == nil {
				err = errors.New("no newline")
			}
			return recs, off, fmt.Errorf("line %d: %w", line, err)
		}
		recs = append(recs, r)
		off += end + 1
	}
	return recs, off, nil
}

// isTornTail reports whether rest, the journal from a bad line on, is what
// an interrupted append leaves: at most one line (possibly unterminated,
// possibly padded with NUL bytes by the file system).
func isTornTail(rest []byte) bool {
	rest = bytes.TrimRight(rest, "\x00\n\r\t ")
	return bytes.IndexByte(rest, '\n') < 0
}

// syncDir fsyncs a directory so that entries created in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncFiles fsyncs the given files (relative to base unless absolute), then
// the directories holding them.
func syncFiles(base string, files []string) error {
	dirs := map[string]bool{}
	for _, name := range files {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

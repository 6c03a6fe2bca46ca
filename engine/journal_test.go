package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseJournal(t *testing.T) {
	const (
		a = `{"time":"2026-11-22T09:30:00Z","type":"run-start"}` + "\n"
		b = `{"time":"2026-11-22T09:30:01Z","type":"intent","step":"put"}` + "\n"
	)
	tests := []struct {
		name    string
		data    string
		want    []string
		good    int
		wantErr string
	}{
		{name: "empty", data: "", good: 0},
		{name: "complete", data: a + b, want: []string{"run-start", "intent put"}, good: len(a + b)},
		{name: "torn last line", data: a + b + `{"time":"2026-11-22T09:3`, want: []string{"run-start", "intent put"}, good: len(a + b)},
		{name: "record without its newline", data: a + strings.TrimSuffix(b, "\n"), want: []string{"run-start"}, good: len(a)},
		{name: "NUL padding after a crash", data: a + "\x00\x00\x00\x00", want: []string{"run-start"}, good: len(a)},
		{name: "torn line then NULs", data: a + `{"ti` + "\x00\x00\n\x00", want: []string{"run-start"}, good: len(a)},
		{name: "bad line in the middle", data: a + "garbage\n" + b, want: []string{"run-start"}, wantErr: "line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, good, err := parseJournal([]byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := types(recs); !equal(got, tc.want) {
				t.Errorf("records = %q, want %q", got, tc.want)
			}
			if good != tc.good {
				t.Errorf("good = %d, want %d", good, tc.good)
			}
		})
	}
}

// TestJournalDurability checks that a buffered record reaches the file
// only with the next durable one, and that reopening cuts a torn tail.
func TestJournalDurability(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFile)
	clock := func() time.Time { return time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC) }
	j, err := createJournal(path, NewRedactor([]string{"hunter2"}), clock)
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if err := j.add(&Record{Type: RecStepStart, Step: "a", Message: "pw hunter2"}, false); err != nil {
		t.Fatal(err)
	}
	if size() != 0 {
		t.Error("a buffered record was written before a durable one")
	}
	if err := j.add(&Record{Type: RecIntent, Step: "a"}, true); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadJournal(path)
	if err != nil || !equal(types(recs), []string{"step-start a", "intent a"}) {
		t.Fatalf("after a durable record: %q, %v", types(recs), err)
	}
	if recs[0].Message != "pw ***" || !recs[0].Time.Equal(clock()) {
		t.Errorf("record = %+v", recs[0])
	}
	// A second process cannot open a journal in use.
	if _, _, err := openJournal(path, nil, clock); err != errRunLive {
		t.Errorf("open of a live journal: %v", err)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}

	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"type":"do`)
	f.Close()
	j, recs, err = openJournal(path, nil, clock)
	if err != nil || len(recs) != 2 {
		t.Fatalf("reopen: %d records, %v", len(recs), err)
	}
	if err := j.add(&Record{Type: RecDone, Step: "a"}, true); err != nil {
		t.Fatal(err)
	}
	j.close()
	recs, err = ReadJournal(path)
	if err != nil || !equal(types(recs), []string{"step-start a", "intent a", "done a"}) {
		t.Errorf("after the torn tail was cut: %q, %v", types(recs), err)
	}
}

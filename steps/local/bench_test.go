package local_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"runbook/engine"
	"runbook/steps/local"
)

// runbookOf returns a runbook of n steps, each made by step(i).
func runbookOf(b *testing.B, n int, step func(i int) string) *engine.Runbook {
	b.Helper()
	var src strings.Builder
	src.WriteString("apiVersion: runbook/v1\nname: bench\ntitle: Benchmark\nsteps:\n")
	for i := range n {
		src.WriteString(step(i))
	}
	reg := engine.NewRegistry()
	local.Register(reg)
	rb, err := engine.Load(reg, "bench.yaml", []byte(src.String()))
	if err != nil {
		b.Fatal(err)
	}
	return rb
}

// runEach runs rb once per iteration with a fresh state dir on the real disk
// (t.TempDir) and reports the time per step.
func runEach(b *testing.B, rb *engine.Runbook, n int, before func(dir string)) {
	b.Helper()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		if before != nil {
			before(dir)
		}
		r := &engine.Runner{StateDir: filepath.Join(dir, "state")}
		b.StartTimer()
		if _, err := r.Run(context.Background(), rb, map[string]any{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/step")
}

// BenchmarkAssertRunbook runs a 1,000-step runbook of the assert step type
// through the engine, journal included.
func BenchmarkAssertRunbook(b *testing.B) {
	const n = 1000
	rb := runbookOf(b, n, func(i int) string {
		return fmt.Sprintf("  - id: a%d\n    uses: assert\n    with: {that: \"${{ %d >= 0 }}\", message: m}\n", i, i)
	})
	runEach(b, rb, n, nil)
}

// BenchmarkExecCheckRunbook runs a 1,000-step runbook of exec write steps
// with a check command, journal on a real disk: each step runs its check
// for the plan, its command, and its check again to verify, so three
// processes per step. BenchmarkSpawn3 measures those three processes alone;
// the engine's own cost per step is the difference.
func BenchmarkExecCheckRunbook(b *testing.B) {
	const n = 1000
	work := b.TempDir()
	rb := runbookOf(b, n, func(i int) string {
		f := filepath.Join(work, fmt.Sprintf("f%d", i))
		return fmt.Sprintf("  - id: e%d\n    uses: exec\n    with: {argv: [touch, %q], check: [test, -f, %q]}\n", i, f, f)
	})
	runEach(b, rb, n, func(string) {
		files, _ := filepath.Glob(filepath.Join(work, "f*"))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSpawn3 starts the three processes an exec step with a check
// starts (test, touch, test), without the engine.
func BenchmarkSpawn3(b *testing.B) {
	dir := b.TempDir()
	f := filepath.Join(dir, "f")
	for b.Loop() {
		_ = exec.Command("test", "-f", f).Run()
		if err := exec.Command("touch", f).Run(); err != nil {
			b.Fatal(err)
		}
		if err := exec.Command("test", "-f", f).Run(); err != nil {
			b.Fatal(err)
		}
	}
}

package model

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time, so that benchmarks
// on a shared machine can also report the work done, not only wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBuildHealthy measures building the two-node healthy lab with a
// warm key pool, as every lab after the first in a test binary is built.
func BenchmarkBuildHealthy(b *testing.B) {
	if _, err := Build("healthy", Options{Dir: b.TempDir()}); err != nil {
		b.Fatal(err) // warms pki.Pool: the first lab of a process generates the keys
	}
	start := cpuTime()
	for b.Loop() {
		d, err := Build("healthy", Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkSnapshot measures the canonical dump tests take around dry-runs.
func BenchmarkSnapshot(b *testing.B) {
	d, err := Build("healthy", Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		d.Snapshot()
	}
}

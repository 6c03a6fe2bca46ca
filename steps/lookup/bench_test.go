package lookup

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/lab/model"
	"runbook/target"
)

// labProcess runs the benchmarks' lab in a child process (this test binary,
// started again with benchLabEnv set), so that the memory measured in the
// benchmark process is the step's own: its Lookup Service client, the SOAP
// decoding and the step's data. In-process, the lab's directory and server
// are counted too.
var labProcess = flag.Bool("lookup.lab-process", false, "benchmarks: serve the lab from a child process, so that memory metrics are the step's alone")

// benchLabEnv, when set to a number of registrations, makes the test binary
// serve a benchmark lab instead of running tests (see serveBenchLab).
const benchLabEnv = "RUNBOOK_LOOKUP_BENCH_LAB"

func TestMain(m *testing.M) {
	if n := os.Getenv(benchLabEnv); n != "" {
		os.Exit(serveBenchLab(n))
	}
	os.Exit(m.Run())
}

// benchLab is a healthy lab with n extra registrations of two endpoints
// each, every endpoint trusting old.
type benchLab struct {
	env      *engine.Env
	old, new []byte // DER
}

// addBenchRegistrations saves n registrations trusting old into d, as a
// large SSO domain would have them (two endpoints, one attribute each).
func addBenchRegistrations(d *model.Domain, n int, old []byte) error {
	for i := range n {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		host := fmt.Sprintf("https://solution%d.bench.test", i%64)
		err := d.SaveRegistration(model.Registration{
			ServiceID: id, Product: "com.example.bench", Type: "bench", Version: "1.0",
			OwnerID: "bench-" + id[:8] + "@" + d.Name, NodeID: d.Nodes[i%len(d.Nodes)].MachineID, SiteID: d.Site,
			Endpoints: []model.Endpoint{
				{URL: host + "/sdk", Type: "com.example.bench.sdk", Protocol: "vmomi", SslTrust: []string{trustOf(old)}},
				{URL: host + "/ui", Type: "com.example.bench.ui", Protocol: "https", SslTrust: []string{trustOf(old)}},
			},
			Attributes: map[string]string{"com.example.bench.index": strconv.Itoa(i)},
		})
		if err != nil {
			return fmt.Errorf("add registration %d: %w", i, err)
		}
	}
	return nil
}

// startBenchLab starts a healthy lab with n extra registrations, in this
// process or (with -lookup.lab-process) in a child, and opens it as the
// target of an Env.
func startBenchLab(b *testing.B, n int) *benchLab {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := b.TempDir()
	profile := filepath.Join(dir, "bench.yaml")
	if *labProcess {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), benchLabEnv+"="+strconv.Itoa(n), "RUNBOOK_LOOKUP_BENCH_DIR="+dir)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = stdin.Close() // the child closes its lab and exits
			_ = cmd.Wait()
		})
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			b.Fatalf("benchmark lab: %q, %v", line, err)
		}
	} else {
		if err := buildBenchLab(ctx, b, n, dir); err != nil {
			b.Fatal(err)
		}
	}
	p, err := target.LoadProfile(profile)
	if err != nil {
		b.Fatal(err)
	}
	tg, err := target.Open(ctx, p, target.Options{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tg.Close() })
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	return &benchLab{
		env: &engine.Env{RunID: "bench", StepID: "update", BackupDir: b.TempDir(), Target: tg,
			Redact: func(s string) string { return s }},
		old: read("old.der"),
		new: read("new.der"),
	}
}

// buildBenchLab starts the lab, adds n registrations and writes into dir
// the profile (bench.yaml) and the old and new certificates. It returns
// once the lab is ready; tb's cleanup closes it.
func buildBenchLab(ctx context.Context, tb testing.TB, n int, dir string) error {
	l, err := lab.Start(ctx, "healthy")
	if err != nil {
		return err
	}
	tb.Cleanup(func() { _ = l.Close() })
	old, cur := selfSigned(tb, "old.bench.test"), selfSigned(tb, "new.bench.test")
	if err := addBenchRegistrations(l.Model(), n, old); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "old.der"), old, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "new.der"), cur, 0o600); err != nil {
		return err
	}
	return l.WriteProfile(filepath.Join(dir, "bench.yaml"))
}

// serveBenchLab is the child process of -lookup.lab-process: it builds the
// lab with n registrations, says "ready", and serves until its standard
// input closes.
func serveBenchLab(n string) int {
	count, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchmark lab: %s=%q: %v\n", benchLabEnv, n, err)
		return 2
	}
	tb := &cleanups{}
	defer tb.run()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := buildBenchLab(ctx, tb, count, os.Getenv("RUNBOOK_LOOKUP_BENCH_DIR")); err != nil {
		fmt.Fprintf(os.Stderr, "benchmark lab: %v\n", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// cleanups is the testing.TB of the benchmark lab's child process: it only
// collects cleanups, and turns a fatal error into an exit.
type cleanups struct {
	testing.TB
	fns []func()
}

func (c *cleanups) Helper()          {}
func (c *cleanups) Cleanup(f func()) { c.fns = append(c.fns, f) }
func (c *cleanups) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"benchmark lab:"}, args...)...)
	c.run()
	os.Exit(1)
}

func (c *cleanups) run() {
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
	c.fns = nil
}

// peakHeap samples the heap in use (runtime/metrics: heap objects plus
// unused heap spans, what MemStats calls HeapInuse) every millisecond until
// stopped, and reports the peak above the heap in use when it started (after a
// collection), the base itself, and the process's peak RSS (VmHWM).
type peakHeap struct {
	base, peak uint64
	cpu        time.Duration // process CPU time when sampling started
	stop       chan struct{}
	done       sync.WaitGroup
}

var heapSamples = []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes"}

func heapInUse(s []metrics.Sample) uint64 {
	metrics.Read(s)
	var sum uint64
	for _, v := range s {
		sum += v.Value.Uint64()
	}
	return sum
}

func startPeak() *peakHeap {
	runtime.GC()
	s := make([]metrics.Sample, len(heapSamples))
	for i, name := range heapSamples {
		s[i].Name = name
	}
	p := &peakHeap{stop: make(chan struct{}), cpu: cpuTime()}
	p.base = heapInUse(s)
	p.peak = p.base
	p.done.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := heapInUse(s); v > p.peak {
				p.peak = v
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	})
	return p
}

// report stops sampling and reports base-MiB, peak-MiB (above base),
// rss-MiB (the process's peak resident set so far) and cpu-s/op (the
// process's CPU time per iteration: with -lookup.lab-process, the step's own
// work, which the machine's load does not inflate as it does wall time).
func (p *peakHeap) report(b *testing.B) {
	close(p.stop)
	p.done.Wait()
	b.ReportMetric((cpuTime()-p.cpu).Seconds()/float64(b.N), "cpu-s/op")
	const mib = 1 << 20
	b.ReportMetric(float64(p.base)/mib, "base-MiB")
	b.ReportMetric(float64(p.peak-p.base)/mib, "peak-MiB")
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(float64(hwm)/mib, "rss-MiB")
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM returns the process's peak resident set size from /proc, or 0.
func vmHWM() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(data) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(string(v)), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

var benchSizes = []int{1000, 2500, 5000}

// BenchmarkUpdatePlan plans lookup.update_ssltrust over n registrations
// that all trust the old certificate (2n endpoints to change).
func BenchmarkUpdatePlan(b *testing.B) {
	for _, n := range benchSizes {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			bl := startBenchLab(b, n)
			p := &updateParams{OldThumbprint: sha1Colon(bl.old), NewCert: pemOf(bl.new)}
			ctx := context.Background()
			b.ReportAllocs()
			peak := startPeak()
			for b.Loop() {
				plan, err := planUpdate(ctx, bl.env, p)
				if err != nil || len(plan.Changes) != 2*n {
					b.Fatalf("plan: %d changes, %v", len(plan.Changes), err)
				}
			}
			peak.report(b)
		})
	}
}

// BenchmarkUpdateApply applies lookup.update_ssltrust to n registrations
// that all trust the old certificate: one list, then a Get and a Set per
// service. Iterations alternate the direction, old to new then back.
func BenchmarkUpdateApply(b *testing.B) {
	for _, n := range benchSizes {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			bl := startBenchLab(b, n)
			forth := &updateParams{OldThumbprint: sha1Colon(bl.old), NewCert: pemOf(bl.new)}
			back := &updateParams{OldThumbprint: sha1Colon(bl.new), NewCert: pemOf(bl.old)}
			ctx := context.Background()
			b.ReportAllocs()
			peak := startPeak()
			i := 0
			for b.Loop() {
				p := forth
				if i%2 == 1 {
					p = back
				}
				i++
				out, err := applyUpdate(ctx, bl.env, p)
				if err != nil || out.Updated != n || out.Endpoints != 2*n {
					b.Fatalf("apply: %d services, %d endpoints, %v", out.Updated, out.Endpoints, err)
				}
			}
			peak.report(b)
		})
	}
}

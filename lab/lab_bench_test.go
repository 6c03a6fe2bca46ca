package lab

import (
	"context"
	"testing"
)

// BenchmarkStartHealthy starts a two-node healthy lab: the model build, then
// LDAP/LDAPS, HTTPS and SSH servers for both nodes in parallel. Close is
// not timed. The key pool is warm after the first lab of the process (and
// on disk after the first on the machine), as in every test but the first.
func BenchmarkStartHealthy(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		l, err := Start(ctx, "healthy")
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkStartClose is a whole lab lifetime without traffic: Start, then
// Close, which also removes the node trees.
func BenchmarkStartClose(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		l, err := Start(ctx, "healthy")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

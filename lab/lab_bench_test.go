package lab

import (
	"context"
	"testing"
)

// BenchmarkStartHealthy starts and closes a two-node healthy lab: model
// build, then LDAP/LDAPS, HTTPS and SSH servers for both nodes in parallel.
// The first iteration fills the key pool; later ones reuse it, as every lab
// after the first in a process does.
func BenchmarkStartHealthy(b *testing.B) {
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

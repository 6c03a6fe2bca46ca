package model

import "testing"

func BenchmarkBuildHealthy(b *testing.B) {
	if _, err := Build("healthy", Options{Dir: b.TempDir()}); err != nil {
		b.Fatal(err) // warms pki.Pool: the first lab of a process generates the keys
	}
	for b.Loop() {
		d, err := Build("healthy", Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

package sshd

import (
	"crypto/rand"
	"io"
	"testing"
)

// BenchmarkExec dials once and runs one exec per iteration.
func BenchmarkExec(b *testing.B) {
	c := dial(b, startServer(b, Config{}))
	for _, bm := range []struct{ name, cmd string }{
		{"simple", "vecs-cli store list"},
		{"pipeline", `for i in $(vecs-cli store list); do vecs-cli entry list --store $i --text | egrep "Alias|Not After"; done`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				if r := run(b, c, bm.cmd, ""); r.status != 0 {
					b.Fatalf("%+v", r)
				}
			}
		})
	}
}

// BenchmarkSFTP1MiB uploads and downloads 1 MiB over one SFTP session.
func BenchmarkSFTP1MiB(b *testing.B) {
	c := sftpClient(b, startServer(b, Config{}))
	data := make([]byte, 1<<20)
	rand.Read(data)
	b.Run("put", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			put(b, c, "/tmp/bench.bin", data)
		}
	})
	b.Run("get", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			f, err := c.Open("/tmp/bench.bin")
			if err != nil {
				b.Fatal(err)
			}
			n, err := f.WriteTo(io.Discard)
			f.Close()
			if err != nil || n != int64(len(data)) {
				b.Fatalf("%d bytes, %v", n, err)
			}
		}
	})
}

// BenchmarkParse measures the shell parser on the KB one-liner.
func BenchmarkParse(b *testing.B) {
	src := `for i in $(/usr/lib/vmware-vmafd/bin/vecs-cli store list); do echo STORE $i; /usr/lib/vmware-vmafd/bin/vecs-cli entry list --store $i --text | egrep "Alias|Not After"; done`
	for b.Loop() {
		if _, err := parse(src); err != nil {
			b.Fatal(err)
		}
	}
}

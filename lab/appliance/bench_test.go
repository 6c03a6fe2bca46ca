package appliance

import (
	"io"
	"testing"
)

func BenchmarkVecsListText(b *testing.B) {
	d := newLab(b, "healthy")
	for b.Loop() {
		if r := runLine(b, d, d.Nodes[0], "vecs-cli entry list --store MACHINE_SSL_CERT --text"); r.status != 0 {
			b.Fatal(r)
		}
	}
}

func BenchmarkLstoolList(b *testing.B) {
	d := newLab(b, "healthy")
	for b.Loop() {
		if r := runLine(b, d, d.Nodes[0], "lstool.py list --url http://localhost:7090/lookupservice/sdk"); r.status != 0 {
			b.Fatal(r)
		}
	}
}

// BenchmarkReplaceMachineSSL measures option 3 end to end (new VMCA
// certificate, Lookup Service update, service restart) on a fresh lab
// each time; building the lab is not timed.
func BenchmarkReplaceMachineSSL(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		d := newLab(b, "healthy")
		n := d.Nodes[0]
		b.StartTimer()
		if err := ReplaceMachineSSL(b.Context(), d, n, machineCfg(n), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

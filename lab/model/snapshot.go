package model

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"runbook/lab/pki"
)

// Snapshot returns a canonical text of everything mutable in the domain:
// the directory as LDIF, the VMCA root, and per node its reachability,
// VECS stores (aliases, entry types, SHA-256 of every certificate, key and
// CRL), service states and its whole file tree (mode, size and SHA-256 of
// every file, link targets). Two snapshots are equal exactly when nothing
// changed; tests compare them around a dry-run. Passwords are left out.
// Snapshot takes the domain lock briefly: do not call it inside Do.
func (d *Domain) Snapshot() []byte {
	d.mu.Lock()
	root := d.root
	nodes := append([]*Node(nil), d.Nodes...)
	d.mu.Unlock()

	var b bytes.Buffer
	fmt.Fprintf(&b, "domain %s scenario %s\n", d.Name, d.Scenario)
	if root != nil {
		fmt.Fprintf(&b, "vmca-root cert %s key %s\n", pki.SHA256Hex(root.DER), pki.SHA256Hex(root.KeyPKCS8))
	}
	b.WriteString("\n== directory\n")
	b.Write(d.Dir.LDIF())
	for _, n := range nodes {
		fmt.Fprintf(&b, "\n== node %s\ntype %s machine-id %s online %t replication-paused %t\n",
			n.PNID, n.Type, n.MachineID, n.Online(), n.ReplicationPaused())
		b.WriteString("-- vecs\n")
		for _, s := range n.VECS.StoreNames() {
			fmt.Fprintf(&b, "store %s\n", s)
			entries, err := n.VECS.Entries(s)
			if err != nil {
				fmt.Fprintf(&b, "  error %v\n", err)
				continue
			}
			for _, e := range entries {
				fmt.Fprintf(&b, "  entry %q type %q\n", e.Alias, e.Type)
				for i, c := range e.Certs {
					fmt.Fprintf(&b, "    cert[%d] %s\n", i, pki.SHA256Hex(c))
				}
				if len(e.Key) > 0 {
					fmt.Fprintf(&b, "    key %s\n", pki.SHA256Hex(e.Key))
				}
				if len(e.CRL) > 0 {
					fmt.Fprintf(&b, "    crl %s\n", pki.SHA256Hex(e.CRL))
				}
			}
		}
		b.WriteString("-- services\n")
		if n.Services != nil {
			running, stopped := n.Services.Status()
			fmt.Fprintf(&b, "running: %s\nstopped: %s\n", strings.Join(running, " "), strings.Join(stopped, " "))
		}
		b.WriteString("-- files\n")
		writeTree(&b, n.Root)
	}
	return b.Bytes()
}

// writeTree lists every file under root in lexical order.
func writeTree(b *bytes.Buffer, root string) {
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		name := "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/"
		}
		if err != nil {
			fmt.Fprintf(b, "! %s %v\n", name, err)
			return nil
		}
		info, err := de.Info()
		if err != nil {
			fmt.Fprintf(b, "! %s %v\n", name, err)
			return nil
		}
		mode := info.Mode()
		switch {
		case mode.IsDir():
			fmt.Fprintf(b, "d %04o %s\n", mode.Perm(), name)
		case mode&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(b, "l %s -> %s\n", name, target)
		case mode.IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				fmt.Fprintf(b, "! %s %v\n", name, err)
				return nil
			}
			fmt.Fprintf(b, "f %04o %d %s %s\n", mode.Perm(), len(data), pki.SHA256Hex(data), name)
		default:
			fmt.Fprintf(b, "? %s %s\n", mode.Type(), name)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(b, "! walk %v\n", err)
	}
}

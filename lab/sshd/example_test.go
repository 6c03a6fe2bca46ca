package sshd_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"

	"runbook/lab/sshd"
)

// ExampleStart serves one appliance command and runs it through the shell
// with a client that pins the host key.
func ExampleStart() {
	root, err := os.MkdirTemp("", "node")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)

	vmafdCLI := func(ctx context.Context, inv *sshd.Invocation) int {
		if strings.Join(inv.Args[1:], " ") != "get-machine-id" {
			fmt.Fprintln(inv.Stderr, "Invalid command")
			return 22
		}
		fmt.Fprintln(inv.Stdout, "ce510c87-35e6-444e-82f0-60a7527608a3")
		return 0
	}
	srv, err := sshd.Start(context.Background(), sshd.Config{
		User:     "root",
		Password: "example-only",
		Root:     root,
		Hostname: "vcsa1.example.com",
		Commands: map[string]sshd.Command{
			"/usr/lib/vmware-vmafd/bin/vmafd-cli": vmafdCLI,
			"vmafd-cli":                           vmafdCLI,
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	client, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User: "root",
		Auth: []ssh.AuthMethod{ssh.Password("example-only")},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if ssh.FingerprintSHA256(key) != srv.HostKeyFingerprint() {
				return fmt.Errorf("unexpected host key")
			}
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	session, err := client.NewSession()
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()
	out, err := session.Output("vmafd-cli get-machine-id | wc -c; vmafd-cli bogus 2>&1; echo status $?")
	fmt.Printf("%s%v\n", out, err)
	fmt.Println(srv.Audit())
	// Output:
	// 37
	// Invalid command
	// status 22
	// <nil>
	// [vmafd-cli get-machine-id | wc -c; vmafd-cli bogus 2>&1; echo status $?]
}

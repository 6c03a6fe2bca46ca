//go:build !unix

package local

import "os/exec"

// isolate leaves cmd as it is: without process groups, cancellation kills
// only the program itself.
func isolate(*exec.Cmd) {}

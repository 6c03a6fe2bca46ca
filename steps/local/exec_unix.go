//go:build unix

package local

import (
	"os/exec"
	"syscall"
)

// isolate starts cmd in a process group of its own and makes cancellation
// kill the whole group, so that nothing the command started outlives it.
// The group also keeps the terminal's Ctrl-C from reaching the command
// directly: the engine cancels the step instead.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

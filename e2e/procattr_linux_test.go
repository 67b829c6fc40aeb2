package e2e

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill a server whose test process died (a test
// timeout panics without running cleanups), so no server outlives its test.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

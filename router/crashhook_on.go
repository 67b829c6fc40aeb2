//go:build crashhook && unix

package router

import (
	"bytes"
	"os"
	"sync"
	"syscall"
)

// crashOn is the marker RTSTREAM_TEST_CRASH_ON names, read once.
var crashOn = sync.OnceValue(func() []byte { return []byte(os.Getenv("RTSTREAM_TEST_CRASH_ON")) })

// crashHook kills the process, as the kernel's OOM killer would (SIGKILL:
// no deferred function, no clean stop), when an event's data holds the
// marker. Only test builds (-tags crashhook) have it.
func crashHook(data []byte) {
	if m := crashOn(); len(m) > 0 && bytes.Contains(data, m) {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

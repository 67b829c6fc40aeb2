//go:build unix

package e2e

import (
	"net"
	"syscall"
	"time"
)

// dialSmallReadBuffer connects to addr with the socket's receive buffer set
// to size before the connection is made, so that the window the kernel
// offers stays that small. (Shrinking it on a connected socket leaves a
// window that, once filled, drains only by zero-window probes.)
func dialSmallReadBuffer(addr string, size int) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	d.Control = func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		}); err != nil {
			return err
		}
		return serr
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

//go:build !unix

package e2e

import (
	"net"
	"time"
)

// dialSmallReadBuffer connects to addr and then shrinks the socket's receive
// buffer to size.
func dialSmallReadBuffer(addr string, size int) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	if err := tc.SetReadBuffer(size); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}

//go:build unix

package main

import "syscall"

// tryWrite writes what the socket takes now, without waiting, and says how much that was.
func tryWrite(rc syscall.RawConn, b []byte) (n int, err error) {
	cerr := rc.Control(func(fd uintptr) {
		for n < len(b) && err == nil {
			m, e := syscall.Write(int(fd), b[n:])
			switch {
			case e == syscall.EAGAIN || e == nil && m == 0:
				return // the socket takes no more now
			case e != syscall.EINTR:
				n, err = n+max(m, 0), e
			}
		}
	})
	if err == nil {
		err = cerr
	}
	return n, err
}

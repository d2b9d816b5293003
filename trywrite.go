//go:build unix

package main

import "syscall"

// tryWrite writes what the socket takes now, without waiting, and says how much that was.
func tryWrite(rc syscall.RawConn, b []byte) (n int, err error) {
	cerr := rc.Control(func(fd uintptr) {
		for n < len(b) {
			m, e := syscall.Write(int(fd), b[n:])
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN || e == nil && m == 0:
				return
			case e != nil:
				err = e
				return
			}
			n += m
		}
	})
	if err == nil {
		err = cerr
	}
	return n, err
}

//go:build !unix

package main

import "syscall"

// tryWrite writes nothing where the socket cannot be written without waiting: the writer
// goroutine does every write.
func tryWrite(rc syscall.RawConn, b []byte) (int, error) { return 0, nil }

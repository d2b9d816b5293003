//go:build race

package main

// Under -race the server binary the tests start is built with it too.
func init() { buildFlags = append(buildFlags, "-race") }

//go:build race

package main

// The race detector makes each connection several times dearer: it checks
// the same code with fewer members, and the plain run checks the scale.
func init() { crowd = 300 }

// Package interop proves the product's Tars codec and services against
// TarsGo v1.4.5, an implementation written elsewhere. Everything is in the
// tests: codec cross-checks, the TarsGo peers program (cmd/tarsgopeers) and
// calls between TarsGo and the built product binary.
package interop

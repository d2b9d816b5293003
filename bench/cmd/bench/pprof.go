package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// pprofEnv names the address the profiling build serves /debug/pprof/ on.
const pprofEnv = "WSBENCH_PPROF"

// pprofFile is added to a copy of the product's sources for the profiling
// build. The product exposes no profiling itself; this adds only an init
// that serves net/http/pprof's DefaultServeMux on a side port, which the
// product's own handlers never use.
const pprofFile = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("` + pprofEnv + `"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
}
`

// copyProduct copies the product's module (without other modules, VCS data
// or run-time data) to dst and adds pprofFile.
func copyProduct(root, dst string) error {
	skip := map[string]bool{".git": true, "bench": true, "e2e": true, "interop": true, "data": true, "logs": true, "node_modules": true}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel != "." && skip[d.Name()] {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copying the product for the profiling build: %w", err)
	}
	return os.WriteFile(filepath.Join(dst, "zz_wsbench_pprof.go"), []byte(pprofFile), 0o644)
}

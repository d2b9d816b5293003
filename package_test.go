package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// readTgz lists a .tgz and extracts its regular files under dir.
func readTgz(t *testing.T, path, dir string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		names = append(names, h.Name)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Mode&0o111 == 0 {
			t.Errorf("%s: %s is not executable (mode %o)", path, h.Name, h.Mode)
		}
		out := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// checkPackage checks the archive holds name/ and name/name, and that the
// binary runs: -h prints the flags and exits 0.
func checkPackage(t *testing.T, tgz, name string) {
	t.Helper()
	dir := t.TempDir()
	names := readTgz(t, tgz, dir)
	if want := []string{name + "/", name + "/" + name}; !slices.Equal(names, want) {
		t.Fatalf("%s lists %q, want %q", tgz, names, want)
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return // the packed binary cannot run here
	}
	out, err := exec.Command(filepath.Join(dir, name, name), "-h").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-config") {
		t.Errorf("packed binary -h: %v\n%s", err, out)
	}
}

func TestPackageSelf(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("-self packs only a linux/amd64 executable")
	}
	t.Parallel()
	out := t.TempDir()
	if code, stderr := runBin(t, out, "package", "-self"); code != 0 {
		t.Fatalf("package -self: exit %d\n%s", code, stderr)
	}
	checkPackage(t, filepath.Join(out, "WebsocketServer.tgz"), "WebsocketServer")
}

func TestPackageBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server")
	}
	t.Parallel()
	src, err := os.Getwd() // the module root
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if code, stderr := runBin(t, t.TempDir(), "package", "-src", src, "-o", out, "-name", "ChatServer"); code != 0 {
		t.Fatalf("package: exit %d\n%s", code, stderr)
	}
	checkPackage(t, filepath.Join(out, "ChatServer.tgz"), "ChatServer")
}

func TestPackageBadUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"package", "-name", "../x"},
		{"package", "-name", ""},
		{"package", "extra"},
		{"package", "-nosuchflag"},
	} {
		if code, stderr := runBin(t, dir, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, stderr)
		}
	}
	missing := filepath.Join(dir, "nowhere")
	code, stderr := runBin(t, dir, "package", "-src", dir, "-o", missing)
	if code != 1 || !strings.Contains(stderr, "package") {
		t.Errorf("package with no module in -src: exit %d\n%s", code, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed package left %v behind", entries)
	}
}

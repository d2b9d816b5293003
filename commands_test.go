package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// runPushBin runs the built binary's push subcommand and returns its exit
// status, stdout and stderr.
func runPushBin(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"push"}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func TestPushCommand(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{})
	member, outsider := p.rawWS(t), p.rawWS(t)
	member.subscribe("room1")
	proxy := testPushObj + "@" + endpoint(p.push)

	for _, c := range []struct {
		name string
		args []string
	}{
		{"the config's PushObj", []string{"-config", p.conf, "-room", "room1"}},
		{"-proxy", []string{"-proxy", proxy, "-room", "room1"}},
		{"-tup", []string{"-proxy", proxy, "-tup", "-room", "room1"}},
	} {
		text := "pushed by the command via " + c.name
		code, out, errOut := runPushBin(t, p.dir, append(c.args, text)...)
		if code != 0 || out != "delivered 1\n" {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q; want 0 and delivered 1", c.name, code, out, errOut)
		}
		if got := member.text(); got != text {
			t.Fatalf("%s: member got %q, want %q", c.name, got, text)
		}
	}

	code, out, errOut := runPushBin(t, p.dir, "-proxy", proxy, "-room", strings.Repeat("r", 129), "x")
	if code != 1 || out != "" || !strings.Contains(errOut, "room name longer than 128 bytes") {
		t.Errorf("long room: exit %d, stdout %q, stderr %q; want 1 and the server's reason", code, out, errOut)
	}

	code, out, errOut = runPushBin(t, p.dir, "-proxy", proxy, "-all", "to everyone")
	if code != 0 || out != "delivered 2\n" {
		t.Fatalf("-all: exit %d, stdout %q, stderr %q; want delivered 2", code, out, errOut)
	}
	for _, c := range []*rawConn{member, outsider} {
		if got := c.text(); got != "to everyone" {
			t.Fatalf("-all: got %q", got)
		}
	}
}

func TestPushCommandToken(t *testing.T) {
	t.Parallel()
	p := startProc(t, procOpts{websocket: "push-token=s3cret"})
	member := p.rawWS(t)
	member.subscribe("room1")

	code, out, errOut := runPushBin(t, p.dir, "-config", p.conf, "-room", "room1", "no token")
	if code != 1 || out != "" || !strings.Contains(errOut, "missing or wrong push token") {
		t.Errorf("without -token: exit %d, stdout %q, stderr %q; want 1 and the server's reason", code, out, errOut)
	}
	code, out, errOut = runPushBin(t, p.dir, "-config", p.conf, "-token", "s3cret", "-room", "room1", "with the token")
	if code != 0 || out != "delivered 1\n" {
		t.Fatalf("with -token: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got := member.text(); got != "with the token" {
		t.Errorf("member got %q", got)
	}
}

func TestPushCommandErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	nobody := testPushObj + "@" + endpoint(freeAddr(t))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-room", "r"}, 2, "no TEXT"},
		{[]string{"-room", "r", "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"text"}, 2, "exactly one of -room ROOM and -all"},
		{[]string{"-room", "r", "-all", "text"}, 2, "exactly one of -room ROOM and -all"},
		{[]string{"-room", "r", ""}, 2, "empty TEXT"},
		{[]string{"-proxy", "NoEndpoints", "-all", "x"}, 1, `"NoEndpoints": no endpoints and no resolver`},
		{[]string{"-proxy", "A.B.PushObj@tcp -h", "-all", "x"}, 1, "A.B.PushObj@tcp -h"},
		{[]string{"-proxy", nobody, "-all", "x"}, 1, testPushObj + ".pushAll: code -8 (proxy connect error)"},
		{[]string{"-config", dir + "/missing.conf", "-all", "x"}, 1, "missing.conf"},
	} {
		code, out, errOut := runPushBin(t, dir, c.args...)
		if code != c.code || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("push %q: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
}

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

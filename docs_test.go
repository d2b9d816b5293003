package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The docs follow two conventions, checked here:
//
//   - A code excerpt is a fenced block right after a line
//     <!-- excerpt: FILE "START" -->, START a Go string literal. The
//     block's first line must start with START, and the block must appear
//     in FILE verbatim, as whole lines.
//   - In docs/tutorial.md every ```sh block is run, in order, in one bash
//     shell, in a copy of the module; a ```text block right after one is
//     the output it must print.

var docFiles = []string{"README.md", "docs/tutorial.md", "docs/operations.md"}

// fence is one fenced block of a Markdown file.
type fence struct {
	lang, body string
	line       int    // of the opening fence
	before     string // the last non-blank line before it
}

func fences(t *testing.T, path, text string) []fence {
	t.Helper()
	var out []fence
	lines := strings.Split(text, "\n")
	prev := ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "```") {
			if strings.TrimSpace(l) != "" {
				prev = l
			}
			continue
		}
		f := fence{lang: strings.TrimPrefix(l, "```"), line: i + 1, before: prev}
		j := i + 1
		for ; j < len(lines) && lines[j] != "```"; j++ {
		}
		if j == len(lines) {
			t.Fatalf("%s:%d: fence never closed", path, i+1)
		}
		f.body = strings.Join(lines[i+1:j], "\n")
		out = append(out, f)
		i, prev = j, "```"
	}
	return out
}

var excerptRE = regexp.MustCompile(`^<!-- excerpt: (\S+) ("(?:[^"\\]|\\.)*") -->$`)

func TestDocExcerpts(t *testing.T) {
	total := map[string]int{}
	for _, doc := range docFiles {
		text := readFile(t, doc)
		for _, f := range fences(t, doc, text) {
			m := excerptRE.FindStringSubmatch(f.before)
			if m == nil {
				if strings.HasPrefix(f.before, "<!-- excerpt") {
					t.Errorf("%s:%d: malformed excerpt marker %q", doc, f.line, f.before)
				}
				continue
			}
			total[doc]++
			file, first := m[1], m[2]
			first, err := strconv.Unquote(first)
			if err != nil {
				t.Errorf("%s:%d: marker %s: %v", doc, f.line, m[2], err)
				continue
			}
			if firstLine, _, _ := strings.Cut(f.body, "\n"); !strings.HasPrefix(firstLine, first) {
				t.Errorf("%s:%d: excerpt of %s does not start with %q", doc, f.line, file, first)
			}
			src, err := os.ReadFile(file)
			if err != nil {
				t.Errorf("%s:%d: %v", doc, f.line, err)
				continue
			}
			if !strings.Contains("\n"+string(src), "\n"+f.body+"\n") {
				t.Errorf("%s:%d: the excerpt is no longer in %s verbatim:\n%s", doc, f.line, file, f.body)
			}
		}
	}
	if total["docs/tutorial.md"] < 8 {
		t.Errorf("docs/tutorial.md has %d excerpts; the convention is not being followed", total["docs/tutorial.md"])
	}
}

// tutorialPorts are the ports the tutorial uses; the test runs it on free
// ones instead.
var tutorialPorts = []string{"18080", "10015", "10016", "20001"}

func TestTutorialCommands(t *testing.T) {
	t.Parallel()
	text := readFile(t, "docs/tutorial.md")
	for _, port := range tutorialPorts {
		_, free, _ := net.SplitHostPort(freeAddr(t))
		text = strings.ReplaceAll(text, port, free)
	}
	blocks := fences(t, "docs/tutorial.md", text)
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	want := map[int]string{}
	n := 0
	for i, f := range blocks {
		if f.lang != "sh" {
			continue
		}
		fmt.Fprintf(&script, "echo '@@ %d'\n%s\n", n, f.body)
		if i+1 < len(blocks) && blocks[i+1].lang == "text" {
			want[n] = blocks[i+1].body
		}
		n++
	}
	script.WriteString("echo '@@ end'\n")
	if n < 8 || len(want) < 8 {
		t.Fatalf("the tutorial has %d command blocks, %d with output; expected a step-by-step run", n, len(want))
	}

	dir := t.TempDir()
	copyModule(t, ".", dir)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	// The shell and what it starts share a process group, stopped as one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Files, not pipes: a server the shell left running must not keep
	// Wait waiting for its output.
	stdout, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err = cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything left in the background
	stdout.Close()
	stderr.Close()
	got := splitOutputs(readFileOr(stdout.Name()))
	for i := range n {
		out, ran := got[strconv.Itoa(i)]
		if !ran {
			t.Errorf("command block %d did not run", i)
			break
		}
		if w, ok := want[i]; ok && strings.TrimRight(out, "\n") != w {
			t.Errorf("command block %d printed\n%s\nwant\n%s", i, out, w)
		}
	}
	if _, ok := got["end"]; !ok || err != nil {
		t.Errorf("the tutorial's commands failed: %v", err)
	}
	if t.Failed() {
		t.Logf("stderr:\n%s\nserver log:\n%s", readFileOr(stderr.Name()),
			readFileOr(filepath.Join(dir, "logs", "TestApp", "WebsocketServer", "TestApp.WebsocketServer.log")))
	}
}

// splitOutputs splits the script's stdout at the "@@ N" markers.
func splitOutputs(s string) map[string]string {
	out := map[string]string{}
	cur := ""
	for _, line := range strings.SplitAfter(s, "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "@@ "); ok {
			cur = name
			out[cur] = ""
			continue
		}
		if cur != "" {
			out[cur] += line
		}
	}
	return out
}

func readFileOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// copyModule copies what building the module needs, and the tutorial's
// client, as a fresh checkout would have them.
func copyModule(t *testing.T, from, to string) {
	t.Helper()
	skipDirs := map[string]bool{".git": true, "e2e": true, "interop": true, "bench": true, "data": true,
		"logs": true, "log": true, "testdata": true, "node_modules": true, "screenshots": true}
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			if skipDirs[d.Name()] {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// Sources only: no tests, no binaries or archives left by builds.
		if !info.Mode().IsRegular() || strings.HasSuffix(rel, "_test.go") || info.Size() > 1<<20 {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := os.OpenFile(filepath.Join(to, rel), os.O_CREATE|os.O_WRONLY, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(dst, src); err != nil {
			dst.Close()
			return err
		}
		return dst.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// missingFrom returns the names not written in doc as `name`.
func missingFrom(doc string, names []string) []string {
	var missing []string
	for _, n := range names {
		if !strings.Contains(doc, "`"+n+"`") {
			missing = append(missing, n)
		}
	}
	return missing
}

func TestOperationsCoversConfig(t *testing.T) {
	doc := readFile(t, "docs/operations.md")
	src := readFile(t, "tarsconf.go") + readFile(t, "tars/config.go")
	// Every key the config readers name: "<key>" in a path, s("key") and
	// cl("key") in tars/config.go, and the websocket keys.
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?:\+ *"<|\b(?:s|cl)\(")([A-Za-z][A-Za-z0-9-]*)(?:>"|"\))`).FindAllStringSubmatch(src, -1) {
		keys[m[1]] = true
	}
	for k := range websocketKeys {
		keys[k] = true
	}
	// And every key of default.conf.
	var walk func(path string)
	walk = func(path string) {
		for _, k := range DefaultConf().Keys(path) {
			keys[k] = true
		}
		for _, s := range DefaultConf().Sections(path) {
			walk(path + "/" + s)
		}
	}
	walk("/")
	if len(keys) < 40 {
		t.Fatalf("found only %d config keys; the source has changed shape", len(keys))
	}
	if m := missingFrom(doc, slices.Sorted(maps.Keys(keys))); len(m) > 0 {
		t.Errorf("docs/operations.md does not describe these config keys: %v", m)
	}

	// Every command the running server lists in tars.help.
	var cmds []string
	for _, line := range strings.Split(strings.TrimSpace(startProc(t, procOpts{}).notify(t, "tars.help")), "\n") {
		cmds = append(cmds, strings.TrimSuffix(strings.Fields(line)[0], ":"))
	}
	if len(cmds) < 9 {
		t.Fatalf("tars.help lists %d commands: %v", len(cmds), cmds)
	}
	if m := missingFrom(doc, cmds); len(m) > 0 {
		t.Errorf("docs/operations.md does not describe these admin commands: %v", m)
	}

	codes := []int{closeNormal, closeGoingAway, closeProtocolError, closeUnsupported, closeBadData,
		closePolicy, closeTooBig, closeSlow, closeKicked}
	var names []string
	for _, c := range codes {
		names = append(names, strconv.Itoa(c))
	}
	if m := missingFrom(doc, names); len(m) > 0 {
		t.Errorf("docs/operations.md does not explain these close codes: %v", m)
	}
}

func TestReadmeCommands(t *testing.T) {
	doc := readFile(t, "README.md")
	for _, want := range []string{"go run .", "go test -race ./...", ".ci/run", "docs/screenshots/client1.png",
		"docs/benchmarks.md", "docs/operations.md", "docs/tutorial.md", "/metrics", "scrape_configs"} {
		if !strings.Contains(doc, want) {
			t.Errorf("README.md does not mention %q", want)
		}
	}
	// Every browser command is documented.
	for _, c := range []string{cmdSubscribe, cmdUnsubscribe, cmdSendByRoom, cmdBroadcast, cmdPing, cmdHistory,
		cmdFormat, cmdRooms, cmdHello} {
		if !strings.Contains(doc, "`"+c) {
			t.Errorf("README.md does not describe the command %s", c)
		}
	}
	// Links to files in the repository point at files that exist.
	for _, m := range regexp.MustCompile(`\]\(([^)#:]+)(?:#[^)]*)?\)`).FindAllStringSubmatch(doc, -1) {
		if _, err := os.Stat(m[1]); err != nil {
			t.Errorf("README.md links to %s: %v", m[1], err)
		}
	}
}

package tars

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// record returns a 30-byte log line numbered n.
func record(n int) string { return fmt.Sprintf("record %03d %s\n", n, strings.Repeat(".", 18)) }

// openRotating opens the log of app A, server B under dir/A/B, in the Tars
// layout, and returns its file and directory.
func openRotating(t *testing.T, size int64, num int) (*Logs, *rotatingFile, string) {
	t.Helper()
	root := t.TempDir()
	l, err := OpenLogs(&Config{App: "A", Server: "B", LogPath: root, LogSize: size, LogNum: num, LogLevel: "INFO"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, l.file, filepath.Join(root, "A", "B")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRotatingFileNamesLikeTars(t *testing.T) {
	l, w, dir := openRotating(t, 100, 3)
	if w.path(0) != filepath.Join(dir, "A.B.log") {
		t.Errorf("path(0) = %q", w.path(0))
	}
	for i := range 10 {
		if _, err := w.Write([]byte(record(i))); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// Three records fit in 100 bytes; the oldest file is dropped.
	for name, want := range map[string]string{
		"A.B.log":  record(9),
		"A.B1.log": record(6) + record(7) + record(8),
		"A.B2.log": record(3) + record(4) + record(5),
	} {
		if got := readFile(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "A.B3.log")); !os.IsNotExist(err) {
		t.Errorf("A.B3.log exists with lognum=3: %v", err)
	}
	if _, err := w.Write([]byte("late\n")); err == nil {
		t.Error("write after Close succeeded")
	}
}

func TestRotatingFileOneFile(t *testing.T) {
	_, w, dir := openRotating(t, 100, 1)
	for i := range 5 {
		w.Write([]byte(record(i) + record(i)))
	}
	if got, want := readFile(t, filepath.Join(dir, "A.B.log")), record(4)+record(4); got != want {
		t.Errorf("A.B.log = %q, want %q", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files with lognum=1", len(entries))
	}
}

func TestRotatingFileContinuesExistingFile(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "A", "B")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "A.B.log"), []byte(record(0)+record(1)+record(2)), 0o644)
	l, err := OpenLogs(&Config{App: "A", Server: "B", LogPath: root, LogSize: 100, LogNum: 2, LogLevel: "INFO"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := l.file
	w.Write([]byte(record(3))) // the file already holds 90 bytes
	if got := readFile(t, filepath.Join(dir, "A.B.log")); got != record(3) {
		t.Errorf("A.B.log = %q, want only the new record", got)
	}
	if got := readFile(t, filepath.Join(dir, "A.B1.log")); got != record(0)+record(1)+record(2) {
		t.Errorf("A.B1.log = %q, want the earlier records", got)
	}
}

func TestRotatingFileConcurrentWriters(t *testing.T) {
	l, w, dir := openRotating(t, 300, 50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				w.Write([]byte(record(g*100 + i)))
			}
		})
	}
	wg.Wait()
	l.Close()
	whole := regexp.MustCompile(`^record \d{3} \.{18}$`)
	lines := 0
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		text := readFile(t, filepath.Join(dir, e.Name()))
		if len(text) > 300 {
			t.Errorf("%s is %d bytes, over the size", e.Name(), len(text))
		}
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if !whole.MatchString(line) {
				t.Fatalf("%s: torn record %q", e.Name(), line)
			}
			lines++
		}
	}
	if lines != 400 {
		t.Errorf("%d records kept in %d files, want all 400", lines, len(entries))
	}
}

func TestLogsLevel(t *testing.T) {
	var out syncBuffer
	l, err := OpenLogs(&Config{App: "A", Server: "B", LogLevel: "WARN"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	l.Logger.Info("hidden-1")
	l.Logger.Warn("shown-1")
	for _, c := range []struct {
		level, shown, hidden string
		logf                 func(string, ...any)
	}{
		{"debug", "shown-2", "", l.Logger.Debug},
		{"NONE", "", "hidden-2", l.Logger.Error},
		{"Error", "shown-3", "", l.Logger.Error},
	} {
		if err := l.SetLevel(c.level); err != nil {
			t.Fatal(err)
		}
		if got := l.Level(); got != strings.ToUpper(c.level) {
			t.Errorf("Level() = %q after SetLevel(%q)", got, c.level)
		}
		c.logf(c.shown + c.hidden)
	}
	got := out.String()
	for _, s := range []string{"shown-1", "shown-2", "shown-3"} {
		if !strings.Contains(got, "msg="+s) {
			t.Errorf("log lacks %s:\n%s", s, got)
		}
	}
	for _, s := range []string{"hidden-1", "hidden-2"} {
		if strings.Contains(got, s) {
			t.Errorf("log has %s:\n%s", s, got)
		}
	}
	if err := l.SetLevel("LOUD"); err == nil || l.Level() != "ERROR" {
		t.Errorf("SetLevel(LOUD) = %v, level now %s", err, l.Level())
	}
	if _, err := OpenLogs(&Config{LogLevel: "LOUD"}, &out); err == nil {
		t.Error("OpenLogs accepted level LOUD")
	}
	if l.file != nil || l.Close() != nil {
		t.Error("a stream log has a file or fails to close")
	}
}

func TestClip(t *testing.T) {
	short := strings.Repeat("a", clipLen)
	if got := Clip(short); got != short {
		t.Errorf("clip of %d bytes changed it: %q", len(short), got)
	}
	long := strings.Repeat("é", 500) // 2 bytes each: the cut falls inside none
	got := Clip(long)
	if want := strings.Repeat("é", clipLen/2) + "…(1000 bytes)"; got != want {
		t.Errorf("clip = %q, want %q", got, want)
	}
	if odd := Clip("x" + long); !utf8.ValidString(odd) || !strings.HasSuffix(odd, "…(1001 bytes)") || len(odd) > clipLen+20 {
		t.Errorf("clip cut a rune or kept too much: %q", odd)
	}
}

func TestQuietLog(t *testing.T) {
	var out syncBuffer
	h := newQuietHandler(&out, nil)
	l := slog.New(h)
	for i := range 1000 {
		l.Warn("refused", "n", i)
		l.With("adapter", "a").Warn("other", "n", i)
		l.Info("info", "n", i) // below WARN: all kept
	}
	if n := strings.Count(out.String(), "msg=info"); n != 1000 {
		t.Errorf("%d of 1000 INFO records logged", n)
	}
	if n := strings.Count(out.String(), "msg=refused n=0"); n != 1 || strings.Count(out.String(), "msg=refused") != 1 {
		t.Errorf("1000 refusals logged as:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "msg=other adapter=a n=0") || strings.Count(out.String(), "msg=other") != 1 {
		t.Errorf("1000 other refusals logged as:\n%s", out.String())
	}
	// Once the interval has passed, the next record counts the suppressed.
	h.mu.Lock()
	h.last["refused"].at = h.last["refused"].at.Add(-quietInterval)
	h.mu.Unlock()
	l.Warn("refused", "n", 1000)
	if !strings.Contains(out.String(), "msg=refused n=1000 suppressed=999") {
		t.Fatalf("the record after the interval does not count the suppressed ones:\n%s", out.String())
	}
	// Values from clients are clipped, whatever their kind.
	out = syncBuffer{}
	h = newQuietHandler(&out, nil)
	l = slog.New(h)
	long := strings.Repeat("o", 10000)
	l.Error(long, "origin", long, "err", errors.New(long), slog.Group("g", "v", long))
	if got := out.String(); len(got) > 6*clipLen || strings.Count(got, "…(10000 bytes)") != 4 {
		t.Errorf("a record with four 10,000-byte values logged as %d bytes:\n%s", len(got), got)
	}
}

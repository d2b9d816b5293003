package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// newFileStore opens a FileStore in dir whose errors go to the returned
// buffer, and closes it when the test ends.
func newFileStore(t *testing.T, dir string) (*FileStore, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	s, err := NewFileStore(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, &logs
}

// stores runs f on each FdStore implementation.
func stores(t *testing.T, f func(t *testing.T, s FdStore)) {
	t.Run("file", func(t *testing.T) {
		s, _ := newFileStore(t, filepath.Join(t.TempDir(), "rooms"))
		f(t, s)
	})
	t.Run("memory", func(t *testing.T) { f(t, &MemStore{}) })
}

func members(t *testing.T, s FdStore, room string) []string {
	t.Helper()
	ids, err := s.Members(room)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func TestStoreMembership(t *testing.T) {
	stores(t, func(t *testing.T, s FdStore) {
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(s.Add("room1", "c1"))
		must(s.Add("room1", "c2"))
		must(s.Add("room1", "c1")) // never twice
		must(s.Add("room2", "c1"))
		if got := members(t, s, "room1"); !slices.Equal(got, []string{"c1", "c2"}) {
			t.Fatalf("room1 = %v", got)
		}
		must(s.Remove("room1", "c2"))
		must(s.Remove("room1", "c9")) // not a member: no error
		if got := members(t, s, "room1"); !slices.Equal(got, []string{"c1"}) {
			t.Fatalf("room1 after remove = %v", got)
		}
		must(s.RemoveAll("c1"))
		for _, room := range []string{"room1", "room2", "never"} {
			if got := members(t, s, room); len(got) != 0 {
				t.Fatalf("%s after RemoveAll = %v", room, got)
			}
		}
	})
}

func TestStoreConcurrentAdds(t *testing.T) {
	stores(t, func(t *testing.T, s FdStore) {
		const n = 64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		// A reader checks that the room always parses while writers work.
		readErr := make(chan error, 1)
		go func() {
			defer close(readErr)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Members("room1"); err != nil {
					readErr <- err
					return
				}
			}
		}()
		for i := range n {
			wg.Go(func() {
				id := fmt.Sprint("c", i)
				if err := s.Add("room1", id); err != nil {
					t.Error(err)
				}
				if err := s.Add("room1", id); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		close(stop)
		if err := <-readErr; err != nil {
			t.Fatalf("a reader saw a broken file: %v", err)
		}
		got := members(t, s, "room1")
		if len(got) != n || len(slices.Compact(slices.Clone(got))) != n {
			t.Fatalf("%d ids after %d distinct adds: %v", len(got), n, got)
		}
	})
}

func TestFileStorePurgesEarlierProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	s, _ := newFileStore(t, dir)
	s.Add("room1", "c1")
	s.Add("room2", "c2")
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("%d files before the restart, want 2", len(entries))
	}
	keep := filepath.Join(dir, "README")
	if err := os.WriteFile(keep, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tempPrefix+"123"), []byte("c5\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	s2, _ := newFileStore(t, dir)
	if got := members(t, s2, "room1"); len(got) != 0 {
		t.Fatalf("stale ids survived a restart: %v", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "README" {
		t.Fatalf("after purge the dir holds %v, want only README", entries)
	}
}

func TestFileStoreHostileRoomNames(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data", "rooms")
	s, _ := newFileStore(t, dir)
	names := []string{"../../etc/passwd", "a/b", "..", ".", "", "a\x00b", `a\b`, "/abs", "Room", "room",
		strings.Repeat("é", 200), strings.Repeat("x", 300)}
	for i, room := range names {
		if err := s.Add(room, fmt.Sprint("c", i)); err != nil {
			t.Fatalf("add to %q: %v", room, err)
		}
	}
	for i, room := range names {
		if got := members(t, s, room); !slices.Equal(got, []string{fmt.Sprint("c", i)}) {
			t.Errorf("room %q = %v, want only c%d", room, got, i)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	// Everything written is directly inside dir.
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Dir(path) != dir {
			t.Errorf("file outside the store: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != len(names) {
		t.Errorf("%d files for %d rooms", len(entries), len(names))
	}
}

func TestFileStoreCorruptFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	s, logs := newFileStore(t, dir)
	path := filepath.Join(dir, roomFileName("room1")+roomFileExt)
	if err := os.WriteFile(path, []byte("c1\n\x00\x01garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The store's memory is the record: a foreign file changes nothing.
	if got := members(t, s, "room1"); len(got) != 0 {
		t.Fatalf("Members read a foreign file: %v", got)
	}
	if err := s.Add("room1", "c2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("room2", "c2"); err != nil {
		t.Fatal(err)
	}
	// Reported by this Flush, or logged by the flusher if it came first.
	want := path + ":2: bad connection id"
	if err := s.Flush(); err == nil || !strings.Contains(err.Error(), want) {
		waitFor(t, "the corrupt file reported", func() bool { return strings.Contains(logs.String(), want) })
	}
	if got := readFile(t, path); got != "c2\n" {
		t.Fatalf("corrupt file replaced by %q, want c2", got)
	}
	if got := readFile(t, filepath.Join(dir, roomFileName("room2")+roomFileExt)); got != "c2\n" {
		t.Fatalf("room2 = %q: other rooms must be written", got)
	}
	if err := s.Add("room1", "bad id"); err == nil || !strings.Contains(err.Error(), `bad connection id "bad id"`) {
		t.Fatalf("Add with a bad id: %v", err)
	}
}

func TestFileStoreUnwritableRoomIsLogged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	s, logs := newFileStore(t, dir)
	// A directory where room1's file goes: it cannot be replaced.
	path := filepath.Join(dir, roomFileName("room1")+roomFileExt)
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.Add("room1", "c1")
	s.Add("room2", "c1")
	room2 := filepath.Join(dir, roomFileName("room2")+roomFileExt)
	waitFor(t, "room2 written behind", func() bool {
		b, _ := os.ReadFile(room2)
		return string(b) == "c1\n"
	})
	waitFor(t, "the failure logged", func() bool { return strings.Contains(logs.String(), path) })
	if got := members(t, s, "room1"); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("room1 = %v after a failed write", got)
	}
}

func TestFileStoreWritesBehind(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	s, _ := newFileStore(t, dir)
	path := filepath.Join(dir, roomFileName("room1")+roomFileExt)
	for i := range 100 {
		s.Add("room1", fmt.Sprint("c", i))
	}
	s.Remove("room1", "c0")
	var want strings.Builder
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&want, "c%d\n", i)
	}
	// In joining order (not sorted: c10 after c9), without asking.
	waitFor(t, "the room file", func() bool {
		b, _ := os.ReadFile(path)
		return string(b) == want.String()
	})
	// Close writes what is left: the room emptied has no file.
	s.RemoveAll("c5")
	for i := 1; i < 100; i++ {
		s.Remove("room1", fmt.Sprint("c", i))
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("empty room's file after Close: %v", err)
	}
	// A Close whose time is up says so.
	s.Add("room1", "c1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a done context: %v", err)
	}
}

func TestFileStoreFilesStayWhole(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	s, _ := newFileStore(t, dir)
	path := filepath.Join(dir, roomFileName("room1")+roomFileExt)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Add("room1", fmt.Sprint("c", i))
			if i%3 == 0 {
				s.Flush()
			}
		}
	})
	for range 200 {
		if _, err := readIDs(path); err != nil {
			t.Fatalf("a reader saw a broken file: %v", err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestRoomFileName(t *testing.T) {
	for room, want := range map[string]string{
		"room1":            "rroom1",
		"":                 "r",
		"..":               "r%2E%2E",
		"a/b":              "ra%2Fb",
		"Room":             "r%52oom",
		"a%b":              "ra%25b",
		"a\x00":            "ra%00",
		"../../etc/passwd": "r%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
	} {
		if got := roomFileName(room); got != want {
			t.Errorf("roomFileName(%q) = %q, want %q", room, got, want)
		}
	}
	long := roomFileName(strings.Repeat("/", 100))
	if len(long) != 65 || long[0] != 'h' {
		t.Errorf("long name maps to %q, want h and a SHA-256 digest", long)
	}
}

func FuzzRoomFileName(f *testing.F) {
	for _, s := range []string{"room1", "", "..", ".", "a/b", "../../etc/passwd", "a\x00b", "Room", "room",
		"%2E", strings.Repeat("x", 199), strings.Repeat("/", 67)} {
		f.Add(s, strings.ToUpper(s))
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		na, nb := roomFileName(a), roomFileName(b)
		for _, n := range []string{na, nb} {
			if n == "" || n == "." || n == ".." || len(n)+len(roomFileExt) > 255 ||
				strings.ContainsAny(n, "/\\\x00:") || !filepath.IsLocal(n) || filepath.Base(n) != n {
				t.Fatalf("unsafe file name %q", n)
			}
			if p := filepath.Join("/store", n+roomFileExt); filepath.Dir(p) != "/store" {
				t.Fatalf("%q leaves the directory: %s", n, p)
			}
		}
		if a != b && strings.EqualFold(na, nb) {
			t.Fatalf("rooms %q and %q share the file name %q / %q", a, b, na, nb)
		}
		if a == b && na != nb {
			t.Fatalf("room %q maps to %q and %q", a, na, nb)
		}
	})
}

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

// testRooms is a room index for a fileStore on its own: add and remove
// change it and mark the room, as the hub does.
type testRooms struct {
	mu    sync.Mutex
	rooms map[string][]string
	store *fileStore
}

func (r *testRooms) members(room string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rooms[room])
}

func (r *testRooms) add(room, id string) {
	r.mu.Lock()
	r.rooms[room] = append(r.rooms[room], id)
	r.mu.Unlock()
	r.store.mark(room)
}

func (r *testRooms) remove(room, id string) {
	r.mu.Lock()
	r.rooms[room] = slices.DeleteFunc(r.rooms[room], func(s string) bool { return s == id })
	r.mu.Unlock()
	r.store.mark(room)
}

// newTestStore opens a fileStore whose rooms are in dir over a testRooms, whose errors go
// to the returned buffer, and closes it when the test ends.
func newTestStore(t *testing.T, dir string) (*testRooms, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	r := &testRooms{rooms: make(map[string][]string)}
	s, err := newFileStore(filepath.Dir(dir), r.members, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.store = s
	t.Cleanup(func() { s.Close(context.Background()) })
	return r, &logs
}

// The hub is the one index: a connection is in a room's file once however
// often it joins, in joining order, until it leaves or closes; every id
// written is one the store reads back.
func TestRoomFilesFollowMembership(t *testing.T) {
	ts := startServer(t, testSettings(), t.TempDir())
	file := func(room string) string { return filepath.Join(ts.dir, "rooms", roomFileName(room)+roomFileExt) }
	a, b := ts.dial(t), ts.dial(t)
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	b.do("subscribe|room1", "Subscribe roomNum:room1 success!")
	a.do("subscribe|room1", "Subscribe roomNum:room1 success!") // never twice
	a.do("subscribe|room2", "Subscribe roomNum:room2 success!")
	ida, idb := a.id(), b.id()
	flushStore(t, ts)
	if got := readFile(t, file("room1")); got != ida+"\n"+idb+"\n" {
		t.Fatalf("room1 = %q, want %s then %s", got, ida, idb)
	}
	if ids, err := readIDs(file("room2")); err != nil || !slices.Equal(ids, []string{ida}) {
		t.Fatalf("room2 = %v, %v", ids, err)
	}
	b.do("unsubscribe|room1", "Unsubscribe roomNum:room1 success!")
	b.do("unsubscribe|room9", "Unsubscribe roomNum:room9 success!") // not a member: no error
	flushStore(t, ts)
	if got := readFile(t, file("room1")); got != ida+"\n" {
		t.Fatalf("room1 after unsubscribe = %q", got)
	}
	a.ws.Close()
	waitFor(t, "a to leave", func() bool { return ts.hub.Counts().Connections == 1 })
	flushStore(t, ts)
	for _, room := range []string{"room1", "room2", "room9"} {
		if _, err := os.Stat(file(room)); !os.IsNotExist(err) {
			t.Fatalf("%s has a file after its members left: %v", room, err)
		}
	}
}

func TestStoreConcurrentAdds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	r, _ := newTestStore(t, dir)
	path := filepath.Join(dir, roomFileName("room1")+roomFileExt)
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
			if _, err := readIDs(path); err != nil {
				readErr <- err
				return
			}
		}
	}()
	for i := range n {
		wg.Go(func() {
			r.add("room1", fmt.Sprint("c", i))
			r.store.Flush()
		})
	}
	wg.Wait()
	close(stop)
	if err := <-readErr; err != nil {
		t.Fatalf("a reader saw a broken file: %v", err)
	}
	if err := r.store.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := readIDs(path)
	if err != nil || len(got) != n || len(slices.Compact(slices.Sorted(slices.Values(got)))) != n {
		t.Fatalf("%d ids after %d distinct adds: %v, %v", len(got), n, got, err)
	}
}

func TestFileStorePurgesEarlierProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	r, _ := newTestStore(t, dir)
	r.add("room1", "c1")
	r.add("room2", "c2")
	if err := r.store.Flush(); err != nil {
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

	newTestStore(t, dir)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "README" {
		t.Fatalf("after purge the dir holds %v, want only README: stale ids survived a restart", entries)
	}
}

func TestFileStoreHostileRoomNames(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data", "rooms")
	r, _ := newTestStore(t, dir)
	names := []string{"../../etc/passwd", "a/b", "..", ".", "", "a\x00b", `a\b`, "/abs", "Room", "room",
		strings.Repeat("é", 200), strings.Repeat("x", 300)}
	for i, room := range names {
		r.add(room, fmt.Sprint("c", i))
	}
	if err := r.store.Flush(); err != nil {
		t.Fatal(err)
	}
	for i, room := range names {
		path := filepath.Join(dir, roomFileName(room)+roomFileExt)
		if got, err := readIDs(path); err != nil || !slices.Equal(got, []string{fmt.Sprint("c", i)}) {
			t.Errorf("room %q = %v, %v; want only c%d", room, got, err, i)
		}
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
	r, logs := newTestStore(t, dir)
	path := filepath.Join(dir, roomFileName("room1")+roomFileExt)
	if err := os.WriteFile(path, []byte("c1\n\x00\x01garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The hub's memory is the record: a foreign file changes nothing.
	r.add("room1", "c2")
	r.add("room2", "c2")
	// Reported by this Flush, or logged by the flusher if it came first.
	want := path + ":2: bad connection id"
	if err := r.store.Flush(); err == nil || !strings.Contains(err.Error(), want) {
		waitFor(t, "the corrupt file reported", func() bool { return strings.Contains(logs.String(), want) })
	}
	if got := readFile(t, path); got != "c2\n" {
		t.Fatalf("corrupt file replaced by %q, want c2", got)
	}
	if got := readFile(t, filepath.Join(dir, roomFileName("room2")+roomFileExt)); got != "c2\n" {
		t.Fatalf("room2 = %q: other rooms must be written", got)
	}
	// What the store writes are the hub's ids, which the store reads back.
	h, err := newHub(hubOptions{Live: newLive(testSettings())})
	if err != nil {
		t.Fatal(err)
	}
	if id := h.newID(); checkID(id) != nil || checkID("bad id") == nil {
		t.Fatalf("checkID: a hub's id %q refused, or a bad id accepted", id)
	}
}

func TestFileStoreUnwritableRoomIsLogged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	r, logs := newTestStore(t, dir)
	// A directory where room1's file goes: it cannot be replaced.
	path := filepath.Join(dir, roomFileName("room1")+roomFileExt)
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.add("room1", "c1")
	r.add("room2", "c1")
	room2 := filepath.Join(dir, roomFileName("room2")+roomFileExt)
	waitFor(t, "room2 written behind", func() bool {
		b, _ := os.ReadFile(room2)
		return string(b) == "c1\n"
	})
	waitFor(t, "the failure logged", func() bool { return strings.Contains(logs.String(), path) })
	// Written at the room's next change once it can be.
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	r.add("room1", "c2")
	waitFor(t, "room1 written after the failure", func() bool {
		b, _ := os.ReadFile(path)
		return string(b) == "c1\nc2\n"
	})
}

func TestFileStoreWritesBehind(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	r, _ := newTestStore(t, dir)
	path := filepath.Join(dir, roomFileName("room1")+roomFileExt)
	for i := range 100 {
		r.add("room1", fmt.Sprint("c", i))
	}
	r.remove("room1", "c0")
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
	for i := 1; i < 100; i++ {
		r.remove("room1", fmt.Sprint("c", i))
	}
	if err := r.store.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("empty room's file after Close: %v", err)
	}
	// A Close whose time is up says so.
	r.add("room1", "c1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.store.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a done context: %v", err)
	}
}

func TestFileStoreFilesStayWhole(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rooms")
	r, _ := newTestStore(t, dir)
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
			r.add("room1", fmt.Sprint("c", i))
			if i%3 == 0 {
				r.store.Flush()
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

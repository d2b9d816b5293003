package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// FdStore records which connections are in which rooms. It is the record
// operators and tools read; message delivery uses the Hub's in-memory index.
// Ids are connection ids such as "c7.k3f9q".
type FdStore interface {
	Add(room, id string) error
	Remove(room, id string) error
	Members(room string) ([]string, error)
	RemoveAll(id string) error
	// Close writes out what is pending, within ctx, at shutdown.
	Close(ctx context.Context) error
}

// MemStore is an FdStore in memory. The zero value is ready to use.
type MemStore struct {
	mu    sync.Mutex
	rooms map[string]map[string]bool
}

func (m *MemStore) Add(room, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rooms == nil {
		m.rooms = make(map[string]map[string]bool)
	}
	if m.rooms[room] == nil {
		m.rooms[room] = make(map[string]bool)
	}
	m.rooms[room][id] = true
	return nil
}

func (m *MemStore) Remove(room, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rooms[room], id)
	if len(m.rooms[room]) == 0 {
		delete(m.rooms, room)
	}
	return nil
}

func (m *MemStore) Members(room string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.rooms[room]))
	for id := range m.rooms[room] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Close does nothing: there is nothing to write.
func (m *MemStore) Close(context.Context) error { return nil }

func (m *MemStore) RemoveAll(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for room, ids := range m.rooms {
		delete(ids, id)
		if len(ids) == 0 {
			delete(m.rooms, room)
		}
	}
	return nil
}

// FileStore is an FdStore that keeps membership in memory and writes it
// behind to a directory, one file per room, one id per line. A flusher
// rewrites each changed room's file atomically (a temporary file in the same
// directory, then a rename) at most every flushEvery, so joins and leaves never
// wait for the disk and a reader always sees a whole file.
type FileStore struct {
	dir string
	log *slog.Logger

	mu    sync.Mutex
	rooms map[string]map[string]uint64   // room -> id -> order of joining
	ids   map[string]map[string]struct{} // id -> rooms
	dirty map[string]struct{}
	seq   uint64

	flushMu sync.Mutex    // one flush at a time, so files never go back in time
	wake    chan struct{} // a room turned dirty
	quit    chan struct{} // closed by Close
	done    chan struct{} // closed when the flusher has returned
	closed  bool          // guarded by mu
}

// flushEvery is the shortest time between two writes of the store's files.
const flushEvery = 200 * time.Millisecond

// roomFileExt ends every file the store owns; start-up purges only these.
const roomFileExt = ".ids"

// NewFileStore opens the store in dir, creating it if needed, and removes the
// ids an earlier process left: they name connections that no longer exist.
// Errors of the writes behind go to log (nil means slog.Default()); Close
// stops the writer.
func NewFileStore(dir string, log *slog.Logger) (*FileStore, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("room store: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("room store: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(name, roomFileExt) || strings.HasPrefix(name, tempPrefix)) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("room store: purge: %w", err)
			}
		}
	}
	f := &FileStore{
		dir:   dir,
		log:   log,
		rooms: make(map[string]map[string]uint64),
		ids:   make(map[string]map[string]struct{}),
		dirty: make(map[string]struct{}),
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go f.flusher()
	return f, nil
}

// Dir returns the directory the store writes.
func (f *FileStore) Dir() string { return f.dir }

func (f *FileStore) path(room string) string {
	return filepath.Join(f.dir, roomFileName(room)+roomFileExt)
}

func (f *FileStore) Add(room, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := f.rooms[room]
	if _, ok := ids[id]; ok {
		return nil
	}
	if ids == nil {
		ids = make(map[string]uint64)
		f.rooms[room] = ids
	}
	f.seq++
	ids[id] = f.seq
	if f.ids[id] == nil {
		f.ids[id] = make(map[string]struct{})
	}
	f.ids[id][room] = struct{}{}
	f.markLocked(room)
	return nil
}

func (f *FileStore) Remove(room, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removeLocked(room, id)
	return nil
}

func (f *FileStore) removeLocked(room, id string) {
	ids := f.rooms[room]
	if _, ok := ids[id]; !ok {
		return
	}
	delete(ids, id)
	if len(ids) == 0 {
		delete(f.rooms, room)
	}
	delete(f.ids[id], room)
	if len(f.ids[id]) == 0 {
		delete(f.ids, id)
	}
	f.markLocked(room)
}

// markLocked notes that room's file is out of date and wakes the flusher.
func (f *FileStore) markLocked(room string) {
	f.dirty[room] = struct{}{}
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Members returns the room's ids in the order they joined.
func (f *FileStore) Members(room string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.membersLocked(room), nil
}

func (f *FileStore) membersLocked(room string) []string {
	ids := f.rooms[room]
	if len(ids) == 0 {
		return nil
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Compare(ids[a], ids[b]) })
	return out
}

// RemoveAll removes id from every room.
func (f *FileStore) RemoveAll(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for room := range f.ids[id] {
		f.removeLocked(room, id)
	}
	return nil
}

// Flush writes every changed room's file now. A file that is not the store's
// own (it does not parse) is reported and replaced; a file that cannot be
// written is reported and the other rooms are still written. The room is
// written again at its next change.
func (f *FileStore) Flush() error {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	f.mu.Lock()
	type snap struct {
		room string
		ids  []string
	}
	rooms := make([]snap, 0, len(f.dirty))
	for room := range f.dirty {
		rooms = append(rooms, snap{room, f.membersLocked(room)})
	}
	clear(f.dirty)
	f.mu.Unlock()
	var errs []error
	for _, r := range rooms {
		path := f.path(r.room)
		// The store's files are its own: anything else in one was put
		// there by someone else and is worth a word before it goes.
		if _, err := readIDs(path); err != nil {
			errs = append(errs, fmt.Errorf("%w (replaced)", err))
		}
		if err := writeIDs(path, r.ids); err != nil {
			errs = append(errs, fmt.Errorf("room store: room %q: %w", r.room, err))
		}
	}
	return errors.Join(errs...)
}

// flusher writes dirty rooms behind, at most every flushEvery.
func (f *FileStore) flusher() {
	defer close(f.done)
	t := time.NewTimer(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-f.wake:
		case <-f.quit:
			return
		}
		if err := f.Flush(); err != nil {
			f.log.Error("room store", "dir", f.dir, "err", err)
		}
		t.Reset(flushEvery)
		select {
		case <-t.C:
		case <-f.quit:
			return
		}
	}
}

// Close stops the flusher and writes what is left, unless ctx ends first.
// The store keeps answering from memory; a second Close only flushes.
func (f *FileStore) Close(ctx context.Context) error {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.quit)
	}
	f.mu.Unlock()
	flushed := make(chan error, 1)
	go func() {
		<-f.done
		flushed <- f.Flush()
	}()
	select {
	case err := <-flushed:
		return err
	case <-ctx.Done():
		return fmt.Errorf("room store: final flush: %w", ctx.Err())
	}
}

// readIDs reads a room file; a missing file is an empty room.
func readIDs(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("room store: %w", err)
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		id := sc.Text()
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("room store: %s:%d: %w", path, line, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("room store: %s: %w", path, err)
	}
	return ids, nil
}

// writeIDs replaces a room file atomically; an empty room has no file.
func writeIDs(path string, ids []string) error {
	if len(ids) == 0 {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("room store: %w", err)
		}
		return nil
	}
	var b bytes.Buffer
	for _, id := range ids {
		b.WriteString(id)
		b.WriteByte('\n')
	}
	// No fsync: membership is purged at start-up, so only atomicity matters.
	return writeFileAtomic(path, b.Bytes(), false)
}

// tempPrefix starts the names of files being written; they never end in
// roomFileExt, so a reader never mistakes one for a room.
const tempPrefix = ".tmp-"

// writeFileAtomic writes data to a temporary file next to path and renames it
// over path; durable also syncs the data to disk before the rename.
func writeFileAtomic(path string, data []byte, durable bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), tempPrefix)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkID reports whether id looks like a connection id: "c<N>" with an
// optional ".<tag>" of lower-case letters and digits.
func checkID(id string) error {
	num, tag, dotted := strings.Cut(id, ".")
	ok := len(num) > 1 && num[0] == 'c' && (!dotted || tag != "")
	for i := 1; ok && i < len(num); i++ {
		ok = '0' <= num[i] && num[i] <= '9'
	}
	for i := 0; ok && i < len(tag); i++ {
		ok = '0' <= tag[i] && tag[i] <= '9' || 'a' <= tag[i] && tag[i] <= 'z'
	}
	if !ok {
		return fmt.Errorf("bad connection id %q", id)
	}
	return nil
}

// roomFileName maps any room name to a distinct, safe file name (without
// extension): a single path element that is never "." or "..", holds no
// separator or NUL, and stays distinct on case-insensitive file systems.
//
// Letters a-z, digits, '-' and '_' stay; every other byte becomes %XX with
// upper-case hex. Names whose escaped form is long use a SHA-256 digest
// instead, under a different prefix so the two forms never meet.
func roomFileName(room string) string {
	const maxEscaped = 200 // file names are limited to 255 bytes
	var b strings.Builder
	b.WriteByte('r')
	for i := 0; i < len(room); i++ {
		c := room[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		if b.Len() > maxEscaped {
			sum := sha256.Sum256([]byte(room))
			return "h" + hex.EncodeToString(sum[:])
		}
	}
	return b.String()
}

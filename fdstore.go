package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// FdStore records which connections are in which rooms. It is the record
// operators and tools read; message delivery uses the Hub's in-memory index.
// Ids are connection ids such as "c7.k3f9q".
type FdStore interface {
	Add(room, id string) error
	Remove(room, id string) error
	Members(room string) ([]string, error)
	RemoveAll(id string) error
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

// FileStore is an FdStore with one file per room in a directory, one id per
// line. Every change rewrites the room's file atomically (a temporary file in
// the same directory, then a rename), so a reader always sees a whole file.
type FileStore struct {
	dir string
	mu  sync.Mutex // serialises read-modify-write of room files
}

// roomFileExt ends every file the store owns; start-up purges only these.
const roomFileExt = ".ids"

// NewFileStore opens the store in dir, creating it if needed, and removes the
// ids an earlier process left: they name connections that no longer exist.
func NewFileStore(dir string) (*FileStore, error) {
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
	return &FileStore{dir: dir}, nil
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
	ids, err := f.read(room)
	if err != nil {
		return err
	}
	if slices.Contains(ids, id) {
		return nil
	}
	return f.write(room, append(ids, id))
}

func (f *FileStore) Remove(room, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.remove(room, id)
}

func (f *FileStore) remove(room, id string) error {
	ids, err := f.read(room)
	if err != nil {
		return err
	}
	i := slices.Index(ids, id)
	if i < 0 {
		return nil
	}
	return f.write(room, slices.Delete(ids, i, i+1))
}

func (f *FileStore) Members(room string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read(room)
}

// RemoveAll removes id from every room file. It carries on past a bad file
// and reports the first error.
func (f *FileStore) RemoveAll(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return fmt.Errorf("room store: %w", err)
	}
	var first error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), roomFileExt) {
			continue
		}
		if err := f.removeFromFile(filepath.Join(f.dir, e.Name()), id); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (f *FileStore) removeFromFile(path, id string) error {
	ids, err := readIDs(path)
	if err != nil {
		return err
	}
	i := slices.Index(ids, id)
	if i < 0 {
		return nil
	}
	return writeIDs(path, slices.Delete(ids, i, i+1))
}

func (f *FileStore) read(room string) ([]string, error) { return readIDs(f.path(room)) }

func (f *FileStore) write(room string, ids []string) error {
	return writeIDs(f.path(room), ids)
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

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// fileStore writes room membership in rooms/, one file per room, one connection id per line in
// joining order: the FdStore of the TarsPHP demo, for operators and tools. A flusher asks the hub
// for each changed room's members and replaces its file (write, then rename) at most every
// flushEvery, so joins never wait for the disk and a reader sees whole files. history/ holds the
// history log (historylog.go).
type fileStore struct {
	dir     string
	members func(room string) []string
	log     *slog.Logger

	mu    sync.Mutex
	dirty map[string]struct{}

	flushMu sync.Mutex    // one flush at a time, so files never go back in time
	wake    chan struct{} // a room turned dirty
	stop    sync.Once
	quit    chan struct{} // closed by Close
	done    chan struct{} // closed when the flusher has returned
}

const (
	flushEvery  = 200 * time.Millisecond // shortest time between two writes of the files
	roomFileExt = ".ids"                 // ends every room file; start-up purges only these
	tempPrefix  = ".tmp-"                // starts files being written; never a room's
)

// newFileStore opens the store under dataDir and removes the room files an earlier process left:
// they name connections that no longer exist.
func newFileStore(dataDir string, members func(room string) []string, log *slog.Logger) (*fileStore, error) {
	dir := filepath.Join(dataDir, "rooms")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("room store: %w", err)
	}
	entries, err := os.ReadDir(dir)
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && (strings.HasSuffix(n, roomFileExt) || strings.HasPrefix(n, tempPrefix)) {
			err = errors.Join(err, os.Remove(filepath.Join(dir, n)))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("room store: purge: %w", err)
	}
	f := &fileStore{
		dir: dir, members: members, log: log,
		dirty: make(map[string]struct{}),
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go f.flusher()
	return f, nil
}

// mark notes that the rooms' files are out of date and wakes the flusher. A nil store has no files.
func (f *fileStore) mark(rooms ...string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	for _, room := range rooms {
		f.dirty[room] = struct{}{}
	}
	f.mu.Unlock()
	notify(f.wake)
}

// Flush writes every changed room's file now; an empty room has none. A file that is not the
// store's own (it does not parse) is reported and replaced; a file that cannot be written is
// reported, and written again at the room's next change.
func (f *fileStore) Flush() error {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	f.mu.Lock()
	rooms := slices.Collect(maps.Keys(f.dirty))
	clear(f.dirty)
	f.mu.Unlock()
	var errs []error
	for _, room := range rooms {
		path := filepath.Join(f.dir, roomFileName(room)+roomFileExt)
		if _, err := readIDs(path); err != nil {
			errs = append(errs, fmt.Errorf("%w (replaced)", err))
		}
		var err error
		if ids := f.members(room); len(ids) == 0 {
			err = os.Remove(path)
		} else {
			// No fsync: membership is purged at start-up, so only atomicity matters.
			err = writeFileAtomic(path, []byte(strings.Join(ids, "\n")+"\n"), false)
		}
		if err != nil && !os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("room store: room %q: %w", room, err))
		}
	}
	return errors.Join(errs...)
}

// flusher writes dirty rooms behind, at most every flushEvery.
func (f *fileStore) flusher() {
	defer close(f.done)
	for {
		select {
		case <-f.wake:
		case <-f.quit:
			return
		}
		if err := f.Flush(); err != nil {
			f.log.Error("room store", "dir", f.dir, "err", err)
		}
		select {
		case <-time.After(flushEvery):
		case <-f.quit:
			return
		}
	}
}

// Close stops the flusher and writes what is left, unless ctx ends first. A second Close only
// flushes.
func (f *fileStore) Close(ctx context.Context) error {
	f.stop.Do(func() { close(f.quit) })
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
	for line := range strings.Lines(string(data)) {
		ids = append(ids, strings.TrimRight(line, "\r\n"))
		if err := checkID(ids[len(ids)-1]); err != nil {
			return nil, fmt.Errorf("room store: %s:%d: %w", path, len(ids), err)
		}
	}
	return ids, nil
}

// writeFileAtomic writes data to a temporary file next to path and renames it over path; durable
// also syncs the data to disk before the rename.
func writeFileAtomic(path string, data []byte, durable bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), tempPrefix)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil && durable {
		err = tmp.Sync()
	}
	if err = errors.Join(err, tmp.Close()); err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// roomFileName maps any room name to a distinct, safe file name (without extension): a single path
// element that is never "." or "..", holds no separator or NUL, and stays distinct on
// case-insensitive file systems. Letters a-z, digits, '-' and '_' stay; every other byte becomes
// %XX with upper-case hex. Names whose escaped form is long use a SHA-256 digest instead, under a
// different prefix so the two forms never meet.
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

package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"unicode/utf8"
)

// fileStore writes room membership to a directory, one file per room, one
// connection id per line, in joining order: the FdStore of the TarsPHP demo,
// for operators and tools. It keeps no index of its own: a flusher asks
// the hub for each changed room's members and rewrites its file atomically
// (a temporary file in the same directory, then a rename) at most every
// flushEvery, so joins and leaves never wait for the disk and a reader
// always sees a whole file.
type fileStore struct {
	dir     string
	members func(room string) []string
	log     *slog.Logger

	mu     sync.Mutex
	dirty  map[string]struct{}
	closed bool

	flushMu sync.Mutex    // one flush at a time, so files never go back in time
	wake    chan struct{} // a room turned dirty
	quit    chan struct{} // closed by Close
	done    chan struct{} // closed when the flusher has returned
}

const (
	flushEvery     = 200 * time.Millisecond // shortest time between two writes of the files
	roomFileExt    = ".ids"                 // ends every room file; start-up purges only these
	historyFileExt = ".json"
	tempPrefix     = ".tmp-" // starts files being written; never a room's
	maxSavedFrom   = 256     // longest sender accepted from a history file
)

// newFileStore opens the store in dir, creating it if needed, and removes
// the ids an earlier process left: they name connections that no longer
// exist. Close stops the writer.
func newFileStore(dir string, members func(room string) []string, log *slog.Logger) (*fileStore, error) {
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

// mark notes that the rooms' files are out of date and wakes the flusher.
func (f *fileStore) mark(rooms ...string) {
	f.mu.Lock()
	for _, room := range rooms {
		f.dirty[room] = struct{}{}
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Flush writes every changed room's file now. A file that is not the store's
// own (it does not parse) is reported and replaced; a file that cannot be
// written is reported and the other rooms are still written. The room is
// written again at its next change.
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
		// The store's files are its own: anything else in one was put
		// there by someone else and is worth a word before it goes.
		if _, err := readIDs(path); err != nil {
			errs = append(errs, fmt.Errorf("%w (replaced)", err))
		}
		if err := writeIDs(path, f.members(room)); err != nil {
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

// Close stops the flusher and writes what is left, unless ctx ends first.
// A second Close only flushes.
func (f *fileStore) Close(ctx context.Context) error {
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
	for line := range strings.Lines(string(data)) {
		ids = append(ids, strings.TrimRight(line, "\r\n"))
		if err := checkID(ids[len(ids)-1]); err != nil {
			return nil, fmt.Errorf("room store: %s:%d: %w", path, len(ids), err)
		}
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
	// No fsync: membership is purged at start-up, so only atomicity matters.
	return writeFileAtomic(path, []byte(strings.Join(ids, "\n")+"\n"), false)
}

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

// Room history is saved at shutdown, one JSON file per room under the
// history directory, named like the room files, and loaded at start.
type historyFile struct {
	Room     string         `json:"room"`
	Messages []historyEntry `json:"messages"`
}

type historyEntry struct {
	From string    `json:"from"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// saveHistory writes every room's history atomically and removes files of
// rooms that no longer have any. A message whose time JSON cannot hold is
// left out, so that it cannot cost its room's whole history.
func saveHistory(dir string, rooms map[string][]event, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save history: %w", err)
	}
	keep := make(map[string]bool, len(rooms))
	var errs []error
	skipped := 0
	for room, msgs := range rooms {
		f := historyFile{Room: room}
		for _, ev := range msgs {
			if y := ev.Time.Year(); y < 0 || y > 9999 {
				skipped++
				continue
			}
			f.Messages = append(f.Messages, historyEntry{From: ev.From, Time: ev.Time, Text: ev.Text})
		}
		name := roomFileName(room) + historyFileExt
		keep[name] = true
		data, err := json.Marshal(f)
		if err == nil {
			err = writeFileAtomic(filepath.Join(dir, name), data, true)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("room %q: %w", room, err))
		}
	}
	if skipped > 0 {
		log.Warn("save history: messages with a time out of range left out", "count", skipped)
	}
	entries, err := os.ReadDir(dir)
	errs = append(errs, err)
	for _, e := range entries {
		if !keep[e.Name()] && strings.HasSuffix(e.Name(), historyFileExt) {
			errs = append(errs, os.Remove(filepath.Join(dir, e.Name())))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("save history: %w", err)
	}
	return nil
}

// loadHistory reads saved history: each room's messages, the rooms whose
// last message is the oldest first. A bad file or message is logged and
// skipped: losing one room's history must not stop the server.
func loadHistory(dir string, s *Settings, log *slog.Logger) ([][]event, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load history: %w", err)
	}
	var rooms [][]event
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), historyFileExt) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		msgs, err := loadHistoryFile(path, e.Name(), s, log)
		if err != nil {
			log.Error("load history", "file", path, "err", err)
		}
		if len(msgs) > 0 {
			rooms = append(rooms, msgs)
		}
	}
	slices.SortStableFunc(rooms, func(a, b []event) int {
		return a[len(a)-1].Time.Compare(b[len(b)-1].Time)
	})
	return rooms, nil
}

func loadHistoryFile(path, name string, s *Settings, log *slog.Logger) ([]event, error) {
	// The largest file a save can write with these settings: every string
	// escaped at most maxEscape times.
	limit := int64(maxEscape*(s.History*(s.MaxMessage+maxSavedFrom+historyEntryOverhead)+s.MaxRoomName) + 1024)
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if fi.Size() > limit {
		return nil, fmt.Errorf("file of %d bytes, more than the %d a room's history can take", fi.Size(), limit)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f historyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if want := roomFileName(f.Room) + historyFileExt; want != name {
		return nil, fmt.Errorf("file holds room %q, which belongs in %s", f.Room, want)
	}
	if err := checkRoom(f.Room, s); err != nil {
		return nil, err
	}
	var msgs []event
	var bad error
	skipped := 0
	for _, m := range f.Messages {
		err := checkMessage(&m.Text, s)
		switch {
		case err != nil:
		case len(m.From) > maxSavedFrom || !utf8.ValidString(m.From):
			err = fmt.Errorf("sender longer than %d bytes or not UTF-8", maxSavedFrom)
		case m.Time.IsZero() || m.Time.After(time.Now().Add(24*time.Hour)):
			err = fmt.Errorf("time %v out of range", m.Time)
		}
		if err != nil {
			bad = cmp.Or(bad, err)
			skipped++
			continue
		}
		msgs = append(msgs, event{Kind: kindMessage, Room: f.Room, From: m.From, Text: m.Text, Time: m.Time})
	}
	if skipped > 0 {
		log.Warn("load history: bad messages skipped", "file", path, "count", skipped, "first", bad)
	}
	return msgs, nil
}

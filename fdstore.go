package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// roomStore is the durable history of every room, the one thing the server keeps under datapath:
// history/messages.log, an append-only file of checksummed records, one per room message, oldest
// first, read back at start. The hub's commit loop (rooms.go) has it write and sync each group.
//
// Record: uint32 length, uint32 CRC-32C of the payload, payload: uvarint offset, varint unix
// milliseconds, then room, epoch, sender and text, each a uvarint length and its bytes, then the
// sender's display name the same way if it has one (records written before names have none).
type roomStore struct {
	path       string
	log        *slog.Logger
	f          *os.File
	size, base int64 // bytes in the file; right after the last compaction
	broken     error // the file could not be cut back after a failed write: every write fails
}

const (
	logFileName    = "messages.log"
	tempPrefix     = ".tmp-" // starts files being written; removed at start
	recordHeader   = 8       // length, checksum
	compactFloor   = 1 << 20 // no compaction below this size
	maxSavedFrom   = 256     // longest sender accepted from the log
	minHistoryDisk = 4 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// openRoomStore reads the log under dataDir, hands each valid record to restore, cuts a torn or
// corrupt tail (with a warning) and opens the log for appending. It removes what an interrupted
// compaction left, and the room membership files (rooms/*.ids) that versions before this one
// wrote: membership lives in the hub only.
func openRoomStore(dataDir string, s *Settings, log *slog.Logger, restore func(event)) (*roomStore, error) {
	if n := removeFiles(filepath.Join(dataDir, "rooms"), ".ids"); n > 0 {
		log.Info("room store: removed the room membership files of an earlier version", "dir", filepath.Join(dataDir, "rooms"), "files", n)
	}
	dir := filepath.Join(dataDir, "history")
	removeFiles(dir, "")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("history log: %w", err)
	}
	path := filepath.Join(dir, logFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644) // appends after a cut too
	if err != nil {
		return nil, fmt.Errorf("history log: %w", err)
	}
	// A record that breaks the limits of s is skipped; one longer than all history can hold is
	// corruption. No text and no sender: a gap (Hub.gap).
	good, skipped, err := readLog(bufio.NewReader(f), maxHistoryBytes, func(ev event) bool {
		ok := checkRoom(ev.Room, s) == nil && (ev.Text == "" && ev.From == "" || checkMessage(&ev.Text, s) == nil) &&
			(ev.Name == "" || checkName(ev.Name) == nil) && len(ev.From) <= maxSavedFrom && utf8.ValidString(ev.From) &&
			len(ev.Epoch) <= 32 && ev.Offset != 0 && !ev.Time.After(time.Now().Add(24*time.Hour))
		if ok {
			restore(ev)
		}
		return ok
	})
	if skipped > 0 {
		log.Warn("history log: records that break the limits skipped", "file", path, "count", skipped)
	}
	fi, serr := f.Stat()
	if serr == nil && fi.Size() > good {
		log.Warn("history log: torn or corrupt tail cut", "file", path, "at", good, "bytes", fi.Size()-good, "err", err)
		serr = f.Truncate(good)
	}
	if serr != nil {
		f.Close()
		return nil, fmt.Errorf("history log: %w", serr)
	}
	return &roomStore{path: path, log: log, f: f, size: good, base: good}, nil
}

// removeFiles removes dir's temporary files and those ending in ext (none if ext is ""), then dir
// itself if ext is set and nothing is left, and returns how many files it removed.
func removeFiles(dir, ext string) (n int) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && (strings.HasPrefix(name, tempPrefix) || ext != "" && strings.HasSuffix(name, ext)) &&
			os.Remove(filepath.Join(dir, name)) == nil {
			n++
		}
	}
	if ext != "" {
		os.Remove(dir) // fails unless empty
	}
	return n
}

// write appends the items' records and syncs them. A failed write is cut off the file; if it
// cannot be, every later write fails.
func (l *roomStore) write(items []*logItem) error {
	var buf []byte
	for _, it := range items {
		buf = appendRecord(buf, it.f.ev)
	}
	err := l.broken
	if err == nil {
		_, err = l.f.Write(buf)
	}
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		l.log.Error("history log: write failed; the messages are dropped, their pushes answered with the error", "err", err)
		if l.broken == nil {
			l.broken = l.f.Truncate(l.size)
		}
		return fmt.Errorf("history log: %w", err)
	}
	l.size += int64(len(buf))
	return nil
}

// due reports whether the file has doubled since its last compaction.
func (l *roomStore) due() bool { return l.size > max(2*l.base, compactFloor) }

// compact rewrites the log from evs, every room's history: write aside, sync, rename, sync the
// directory. On failure the old file stays in use.
func (l *roomStore) compact(evs []event) error {
	var buf []byte
	for _, ev := range evs {
		buf = appendRecord(buf, ev)
	}
	err := writeFileAtomic(l.path, buf)
	if d, derr := os.Open(filepath.Dir(l.path)); derr == nil {
		err = errors.Join(err, d.Sync())
		d.Close()
	}
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		l.log.Error("history log: compaction failed", "err", err)
		return err
	}
	l.f.Close()
	l.f, l.size, l.base = f, int64(len(buf)), int64(len(buf))
	return nil
}

func (l *roomStore) Close() error { return l.f.Close() }

func appendRecord(b []byte, ev event) []byte {
	start := len(b)
	b = append(b, make([]byte, recordHeader)...)
	b = binary.AppendUvarint(b, ev.Offset)
	b = binary.AppendVarint(b, ev.Time.UnixMilli())
	fields := []string{ev.Room, ev.Epoch, ev.From, ev.Text, ev.Name}
	if ev.Name == "" {
		fields = fields[:4] // as before names
	}
	for _, s := range fields {
		b = append(binary.AppendUvarint(b, uint64(len(s))), s...)
	}
	p := b[start+recordHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(p, crcTable))
	return b
}

// readLog reads records from r until its end or the first torn or corrupt one, and hands each to
// use. It returns the length of the good records, how many use refused, and, if it stopped early,
// why.
func readLog(r io.Reader, maxPayload int, use func(event) bool) (good int64, skipped int, err error) {
	var h [recordHeader]byte
	var p []byte
	for {
		if _, err = io.ReadFull(r, h[:]); err == io.EOF {
			return good, skipped, nil
		} else if err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(h[:])
		if n > uint32(maxPayload) {
			return good, skipped, fmt.Errorf("record of %d bytes, more than %d", n, maxPayload)
		}
		// Read as far as the file goes: a torn length costs no more memory than the file holds.
		if p, err = io.ReadAll(io.LimitReader(r, int64(n))); err == nil && len(p) < int(n) {
			err = io.ErrUnexpectedEOF
		} else if err == nil && crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(h[4:]) {
			err = errors.New("checksum mismatch")
		}
		var ev event
		if err == nil {
			ev, err = decodeRecord(p)
		}
		if err != nil {
			return
		}
		if !use(ev) {
			skipped++
		}
		good += int64(recordHeader + n)
	}
}

// decodeRecord decodes a record's payload; every byte must belong to a field.
func decodeRecord(p []byte) (event, error) {
	bad := errors.New("malformed record")
	off, n := binary.Uvarint(p)
	ms, m := binary.Varint(p[max(n, 0):])
	if n <= 0 || m <= 0 {
		return event{}, bad
	}
	p = p[n+m:]
	ev := event{Kind: kindMessage, Offset: off, Time: time.UnixMilli(ms)}
	for i, s := range []*string{&ev.Room, &ev.Epoch, &ev.From, &ev.Text, &ev.Name} {
		if i == 4 && len(p) == 0 {
			break // written before names
		}
		l, n := binary.Uvarint(p)
		if n <= 0 || l > uint64(len(p)-n) {
			return ev, bad
		}
		*s, p = string(p[n:n+int(l)]), p[n+int(l):]
	}
	if len(p) != 0 {
		return ev, bad
	}
	return ev, nil
}

// writeFileAtomic writes data to a temporary file next to path, syncs it and renames it over path,
// with the mode a file the server creates has (CreateTemp's is 0600).
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), tempPrefix)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = errors.Join(tmp.Chmod(0o644), tmp.Sync())
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

package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Room history is saved at shutdown, one JSON file per room under the history
// directory, named like the room store's files, and loaded at start.

const historyFileExt = ".json"

type historyFile struct {
	Room     string         `json:"room"`
	Messages []historyEntry `json:"messages"`
}

type historyEntry struct {
	From string    `json:"from"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// maxSavedFrom is the longest sender accepted from a history file.
const maxSavedFrom = 256

// saveHistory writes every room's history atomically and removes files of
// rooms that no longer have any. A message whose time JSON cannot hold is
// left out, so that it cannot cost its room's whole history.
func (h *Hub) saveHistory() error {
	h.mu.Lock()
	files := make(map[string]historyFile, len(h.history))
	skipped := 0
	for room, e := range h.history {
		f := historyFile{Room: room}
		for _, ev := range e.Value.(*roomHistory).msgs {
			if y := ev.Time.Year(); y < 0 || y > 9999 {
				skipped++
				continue
			}
			f.Messages = append(f.Messages, historyEntry{From: ev.From, Time: ev.Time, Text: ev.Text})
		}
		files[roomFileName(room)+historyFileExt] = f
	}
	h.mu.Unlock()
	if skipped > 0 {
		h.log.Warn("save history: messages with a time out of range left out", "count", skipped)
	}

	if err := os.MkdirAll(h.historyDir, 0o755); err != nil {
		return fmt.Errorf("save history: %w", err)
	}
	var errs []error
	for name, f := range files {
		data, err := json.Marshal(f)
		if err == nil {
			err = writeFileAtomic(filepath.Join(h.historyDir, name), data, true)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("save history of room %q: %w", f.Room, err))
		}
	}
	entries, err := os.ReadDir(h.historyDir)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("save history: %w", err))...)
	}
	for _, e := range entries {
		if _, keep := files[e.Name()]; !keep && strings.HasSuffix(e.Name(), historyFileExt) {
			if err := os.Remove(filepath.Join(h.historyDir, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("save history: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// loadHistory reads saved history into the bounds that pushes keep. A bad
// file or message is logged and skipped: losing one room's history must
// not stop the server.
func (h *Hub) loadHistory() error {
	entries, err := os.ReadDir(h.historyDir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load history: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), historyFileExt) {
			continue
		}
		path := filepath.Join(h.historyDir, e.Name())
		if err := h.loadHistoryFile(path, e.Name()); err != nil {
			h.log.Error("load history", "file", path, "err", err)
		}
	}
	// Order the rooms by their last message, latest first, as pushes do.
	rooms := make([]*roomHistory, 0, len(h.history))
	for e := h.recent.Front(); e != nil; e = e.Next() {
		rooms = append(rooms, e.Value.(*roomHistory))
	}
	slices.SortStableFunc(rooms, func(a, b *roomHistory) int {
		return b.msgs[len(b.msgs)-1].Time.Compare(a.msgs[len(a.msgs)-1].Time)
	})
	h.recent.Init()
	for _, rh := range rooms {
		h.history[rh.room] = h.recent.PushBack(rh)
	}
	return nil
}

func (h *Hub) loadHistoryFile(path, name string) error {
	s := h.settings
	// The largest file a save can write with these settings: every string
	// escaped at most maxEscape times.
	limit := int64(maxEscape*(s.History*(s.MaxMessage+maxSavedFrom+historyEntryOverhead)+s.MaxRoomName) + 1024)
	if fi, err := os.Stat(path); err != nil {
		return err
	} else if fi.Size() > limit {
		return fmt.Errorf("file of %d bytes, more than the %d a room's history can take", fi.Size(), limit)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var f historyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	if roomFileName(f.Room)+historyFileExt != name {
		return fmt.Errorf("file holds room %q, which belongs in %s", f.Room, roomFileName(f.Room)+historyFileExt)
	}
	if err := checkRoom(f.Room, s); err != nil {
		return err
	}
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
		h.remember(event{Kind: kindMessage, Room: f.Room, From: m.From, Text: m.Text, Time: m.Time})
	}
	if skipped > 0 {
		h.log.Warn("load history: bad messages skipped", "file", path, "count", skipped, "first", bad)
	}
	return nil
}

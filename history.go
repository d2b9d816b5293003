package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
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

// saveHistory writes every room's history atomically and removes files of
// rooms that no longer have any.
func (h *Hub) saveHistory() error {
	h.mu.Lock()
	files := make(map[string]historyFile, len(h.history))
	for room, hist := range h.history {
		f := historyFile{Room: room}
		for _, ev := range hist {
			f.Messages = append(f.Messages, historyEntry{From: ev.From, Time: ev.Time, Text: ev.Text})
		}
		files[roomFileName(room)+historyFileExt] = f
	}
	h.mu.Unlock()

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

// loadHistory reads saved history. A bad file is logged and skipped: losing
// one room's history must not stop the server.
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
	return nil
}

func (h *Hub) loadHistoryFile(path, name string) error {
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
	if len(f.Messages) > h.settings.History {
		f.Messages = f.Messages[len(f.Messages)-h.settings.History:]
	}
	hist := make([]event, 0, len(f.Messages))
	for _, m := range f.Messages {
		hist = append(hist, event{Kind: kindMessage, Room: f.Room, From: m.From, Text: m.Text, Time: m.Time})
	}
	if len(hist) > 0 {
		h.history[f.Room] = hist
		for _, ev := range hist {
			h.historyBytes += len(ev.Text)
		}
	}
	return nil
}

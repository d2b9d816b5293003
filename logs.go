package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// levelNone is above every record's level: at NONE nothing is logged.
const levelNone = slog.Level(1 << 20)

// logLevels are the names tars.setloglevel and logLevel accept.
var logLevels = map[string]slog.Level{
	"DEBUG": slog.LevelDebug,
	"INFO":  slog.LevelInfo,
	"WARN":  slog.LevelWarn,
	"ERROR": slog.LevelError,
	"NONE":  levelNone,
}

// parseLevel reads a level name in any case.
func parseLevel(name string) (slog.Level, error) {
	l, ok := logLevels[strings.ToUpper(name)]
	if !ok {
		return 0, fmt.Errorf("unknown log level %q (want DEBUG, INFO, WARN, ERROR or NONE)", name)
	}
	return l, nil
}

func levelName(l slog.Level) string {
	for name, v := range logLevels {
		if v == l {
			return name
		}
	}
	return l.String()
}

// Logs is the server's log: text records from log/slog at a level that may
// change while the server runs.
type Logs struct {
	Logger *slog.Logger
	level  slog.LevelVar
	file   *rotatingFile // nil: records go to another writer (stderr)
}

// openLogs opens the log in Tars's layout, logpath/App/Server/App.Server.log,
// rotated at logsize with lognum files kept. If logpath is empty, or w is
// not nil, records go to w (or stderr) instead: a person running the server
// by hand is watching the terminal, not a file.
func openLogs(sc *ServerConfig, w io.Writer) (*Logs, error) {
	l := &Logs{}
	if err := l.SetLevel(sc.LogLevel); err != nil {
		return nil, err
	}
	if w == nil && sc.LogPath == "" {
		w = os.Stderr
	}
	if w == nil {
		dir := filepath.Join(sc.LogPath, sc.App, sc.Server)
		f, err := openRotating(dir, sc.App+"."+sc.Server, sc.LogSize, sc.LogNum)
		if err != nil {
			return nil, err
		}
		l.file, w = f, f
	}
	l.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: &l.level}))
	return l, nil
}

// SetLevel changes the level of every record logged from now on.
func (l *Logs) SetLevel(name string) error {
	v, err := parseLevel(name)
	if err != nil {
		return err
	}
	l.level.Set(v)
	return nil
}

// Level returns the current level's name.
func (l *Logs) Level() string { return levelName(l.level.Level()) }

// Path returns the log file's path, or "" when logging to a stream.
func (l *Logs) Path() string {
	if l.file == nil {
		return ""
	}
	return l.file.path(0)
}

// Close closes the log file; records logged later are dropped.
func (l *Logs) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}

// rotatingFile is a log file that is rotated by size as TarsGo does:
// NAME.log becomes NAME1.log, NAME1.log becomes NAME2.log, and so on, keeping
// num files in all. It is safe for concurrent writers.
type rotatingFile struct {
	dir, name string
	max       int64
	num       int

	mu   sync.Mutex
	f    *os.File // nil after Close or a failed reopen
	size int64
	shut bool
}

func openRotating(dir, name string, maxSize int64, num int) (*rotatingFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	w := &rotatingFile{dir: dir, name: name, max: maxSize, num: max(num, 1)}
	if err := w.open(os.O_APPEND); err != nil {
		return nil, err
	}
	return w, nil
}

// path returns the name of the i-th file: 0 is the one being written.
func (w *rotatingFile) path(i int) string {
	n := ""
	if i > 0 {
		n = strconv.Itoa(i)
	}
	return filepath.Join(w.dir, w.name+n+".log")
}

func (w *rotatingFile) open(mode int) error {
	f, err := os.OpenFile(w.path(0), os.O_CREATE|os.O_WRONLY|mode, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log file: %w", err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Write writes one record. A record that would take the file past its size
// starts a new file, so files stay within the size unless one record is
// larger.
func (w *rotatingFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shut {
		return 0, errors.New("log file closed")
	}
	if w.f != nil && w.size > 0 && w.size+int64(len(p)) > w.max {
		w.f.Close()
		w.f = nil
		w.rotate()
	}
	if w.f == nil {
		// Rotated, or an earlier reopen failed: try again now.
		if err := w.open(os.O_TRUNC); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

// rotate shifts the closed files up by one; the oldest is overwritten.
func (w *rotatingFile) rotate() {
	for i := w.num - 1; i >= 1; i-- {
		// A file missing from the sequence is no error: there were fewer.
		os.Rename(w.path(i-1), w.path(i))
	}
}

func (w *rotatingFile) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.shut = true
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// clipLen is how much of a value from a request a log record keeps.
const clipLen = 128

// clip shortens a value a client chose (an Origin, a Host, a room name...)
// for a log record, so no request can make the log grow by its own size.
func clip(s string) string {
	if len(s) <= clipLen {
		return s
	}
	i := clipLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:i], len(s))
}

// quietInterval is how often a quietLog logs the same message.
const quietInterval = 10 * time.Second

// quietLog logs each message (a kind of refusal) at most once per
// quietInterval; the next record it lets through counts those it dropped.
// Refusals come at the rate clients choose: this keeps a flood of them
// from filling the log and rotating older records away.
type quietLog struct {
	mu   sync.Mutex
	last map[string]quietState
}

type quietState struct {
	at      time.Time
	dropped int
}

// maxQuietKeys bounds the messages a quietLog remembers.
const maxQuietKeys = 256

func (q *quietLog) Warn(l *slog.Logger, msg string, args ...any) {
	now := time.Now()
	q.mu.Lock()
	st, seen := q.last[msg]
	if seen && now.Sub(st.at) < quietInterval {
		st.dropped++
		q.last[msg] = st
		q.mu.Unlock()
		return
	}
	if q.last == nil || len(q.last) >= maxQuietKeys {
		q.last = make(map[string]quietState)
	}
	q.last[msg] = quietState{at: now}
	q.mu.Unlock()
	if st.dropped > 0 {
		args = append(args, "suppressed", st.dropped)
	}
	l.Warn(msg, args...)
}

// quietWriter passes net/http's error log to a slog.Logger through a
// quietLog: some of its lines come once per request.
type quietWriter struct {
	l *slog.Logger
	q quietLog
}

func (w *quietWriter) Write(p []byte) (int, error) {
	msg := clip(strings.TrimSpace(string(p)))
	w.q.Warn(w.l, msg)
	return len(p), nil
}

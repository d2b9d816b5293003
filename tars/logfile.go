package tars

import (
	"cmp"
	"context"
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

// logLevels are the names logLevel and tars.setloglevel accept.
var logLevels = map[string]slog.Level{
	"DEBUG": slog.LevelDebug, "INFO": slog.LevelInfo, "WARN": slog.LevelWarn,
	"ERROR": slog.LevelError, "NONE": slog.Level(1 << 20), // above every record
}

// Logs is the server's log: slog text records at a level that may change.
type Logs struct {
	Logger *slog.Logger
	level  slog.LevelVar
	file   *rotatingFile // nil: records go to another writer (stderr)
}

// OpenLogs opens logpath/App/Server/App.Server.log, Tars's layout, rotated
// at logsize with lognum files kept; or, if w is given or logpath empty, w
// or stderr, as a person running the server by hand watches the terminal.
func OpenLogs(cfg *Config, w io.Writer) (*Logs, error) {
	l := &Logs{}
	if err := l.SetLevel(cfg.LogLevel); err != nil {
		return nil, err
	}
	if w == nil && cfg.LogPath != "" {
		dir := filepath.Join(cfg.LogPath, cfg.App, cfg.Server)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("log directory: %w", err)
		}
		l.file = &rotatingFile{base: filepath.Join(dir, cfg.App+"."+cfg.Server), max: cfg.LogSize, num: max(cfg.LogNum, 1)}
		if err := l.file.open(os.O_APPEND); err != nil {
			return nil, err
		}
		w = l.file
	}
	l.Logger = slog.New(newQuietHandler(cmp.Or(w, io.Writer(os.Stderr)), &l.level))
	return l, nil
}

// SetLevel changes the level of every record logged from now on.
func (l *Logs) SetLevel(name string) error {
	v, ok := logLevels[strings.ToUpper(name)]
	if !ok {
		return fmt.Errorf("unknown log level %q (want DEBUG, INFO, WARN, ERROR or NONE)", name)
	}
	l.level.Set(v)
	return nil
}

// Level returns the current level's name.
func (l *Logs) Level() string {
	if v := l.level.Level(); v != logLevels["NONE"] {
		return v.String() // slog's names are those of logLevels
	}
	return "NONE"
}

// Close closes the log file; records logged later are dropped.
func (l *Logs) Close() error {
	if w := l.file; w != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.shut = true; w.f != nil {
			return w.f.Close()
		}
	}
	return nil
}

// rotatingFile is a log file rotated by size as TarsGo does: NAME.log
// becomes NAME1.log, NAME1.log NAME2.log..., num files in all.
type rotatingFile struct {
	base string // path without the number and ".log"
	max  int64
	num  int

	mu   sync.Mutex
	f    *os.File // nil after a failed reopen
	size int64
	shut bool
}

// path returns the name of the i-th file: NAME.log (0, the one being written), NAME1.log...
func (w *rotatingFile) path(i int) string {
	return w.base + strings.TrimPrefix(strconv.Itoa(i), "0") + ".log"
}

func (w *rotatingFile) open(mode int) (err error) {
	if w.f, err = os.OpenFile(w.path(0), os.O_CREATE|os.O_WRONLY|mode, 0o644); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	w.size, _ = w.f.Seek(0, io.SeekEnd)
	return nil
}

// Write writes one record, first starting a new file if the record would take this one past its size.
func (w *rotatingFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shut {
		return 0, errors.New("log file closed")
	}
	if w.f != nil && w.size > 0 && w.size+int64(len(p)) > w.max {
		w.f.Close()
		w.f = nil
		for i := w.num - 1; i >= 1; i-- {
			os.Rename(w.path(i-1), w.path(i)) // a file missing from the sequence is no error
		}
	}
	if w.f == nil { // rotated, or an earlier reopen failed
		if err := w.open(os.O_TRUNC); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

const clipLen = 128 // how much of a client's value Clip keeps

// Clip shortens a value a client chose (an Origin, a room name...) for a log
// record or an answer, so no request can make either grow by its own size.
func Clip(s string) string {
	if len(s) <= clipLen {
		return s
	}
	i := clipLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:i], len(s))
}

// quietHandler guards the log against what clients choose: it clips every string and error, and
// writes a WARN or ERROR message at most once per quietInterval, the next one counting those
// suppressed, so a flood of refusals cannot rotate older records away.
const (
	quietInterval = 10 * time.Second
	maxQuietKeys  = 256 // messages remembered
)

type quietHandler struct {
	slog.Handler
	mu   *sync.Mutex // mu and last are shared with the handlers made by WithAttrs and WithGroup
	last map[string]*quietState
}

type quietState struct {
	at         time.Time
	suppressed int
}

// newQuietHandler returns a text handler that writes to w the records at level and above.
func newQuietHandler(w io.Writer, level slog.Leveler) quietHandler {
	clip := func(_ []string, a slog.Attr) slog.Attr { // the message too
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(Clip(err.Error()))
		} else if a.Value.Kind() == slog.KindString {
			a.Value = slog.StringValue(Clip(a.Value.String()))
		}
		return a
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: clip})
	return quietHandler{h, new(sync.Mutex), make(map[string]*quietState)}
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.Handler.Handle(ctx, r)
	}
	msg := Clip(r.Message)
	h.mu.Lock()
	prev := h.last[msg]
	if prev != nil && r.Time.Sub(prev.at) < quietInterval {
		prev.suppressed++
		h.mu.Unlock()
		return nil
	}
	if len(h.last) >= maxQuietKeys {
		clear(h.last)
	}
	h.last[msg] = &quietState{at: r.Time}
	h.mu.Unlock()
	if prev != nil && prev.suppressed > 0 {
		r.AddAttrs(slog.Int("suppressed", prev.suppressed))
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as), h.mu, h.last}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name), h.mu, h.last}
}

// httpErrorLog passes net/http's error log to the server's log under one
// message, which quietHandler summarises: some lines come once per request.
type httpErrorLog struct{ l *slog.Logger }

func (w httpErrorLog) Write(p []byte) (int, error) {
	w.l.Warn("http server", "err", strings.TrimSpace(string(p)))
	return len(p), nil
}

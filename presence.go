package main

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode"
)

// maxName bounds a display name; maxPresence the members one presence reply lists (its count is
// exact), so that asking costs the same however large the room.
const (
	maxName     = 32
	maxPresence = 100
)

// checkName reports what is wrong with a display name, if anything. Pages show names as text, but
// other clients may not: markup characters are refused rather than trusted to be escaped.
func checkName(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("empty name")
	}
	err := checkText("name", name, maxName, func(r rune) bool { return !unicode.IsPrint(r) }, "a character that is not printable")
	if err == nil && strings.ContainsAny(name, `<>&"'`) {
		err = errors.New(`name contains one of < > & " '`)
	}
	return err
}

// roomMember is one connection in a presence reply.
type roomMember struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

func (c *conn) displayName() string {
	if n := c.name.Load(); n != nil {
		return *n
	}
	return ""
}

// presence returns how many are in room here and at most maxPresence of them, in the order they
// joined. Which ones, when there are more, is unspecified: finding the first would sort them all.
func (h *Hub) presence(room string) (int, []roomMember) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room]
	cs := make([]*conn, 0, min(len(m), maxPresence))
	for c := range m {
		if len(cs) == maxPresence {
			break
		}
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b *conn) int { return cmp.Compare(m[a], m[b]) })
	ms := make([]roomMember, len(cs))
	for i, c := range cs {
		ms[i] = roomMember{c.id, c.displayName()}
	}
	return len(m), ms
}

// announce tells room's json-mode members but c that c joined or left, if Settings.Announce: a
// frame per member on every join and leave, hence off by default. h.mu must be held.
func (h *Hub) announce(c *conn, room, kind string) {
	if !h.live.get().Announce {
		return
	}
	b := event{Kind: kind, Room: room, ID: c.id, Name: c.displayName(), Time: time.Now()}.encode(true)
	for m := range h.rooms[room] {
		if m != c && m.json.Load() {
			m.post(b)
		}
	}
}

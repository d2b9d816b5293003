package main

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// checkRoom reports what is wrong with a room name, if anything.
func checkRoom(room string, s *Settings) error {
	if room == "" {
		return errors.New("empty room name")
	}
	return checkText("room name", room, s.MaxRoomName, unicode.IsControl, "a control character")
}

// checkMessage reports what is wrong with a pushed message, if anything.
func checkMessage(msg *string, s *Settings) error {
	if msg == nil || *msg == "" {
		return errors.New("missing message")
	}
	return checkText("message", *msg, s.MaxMessage, nil, "")
}

// checkText reports what is wrong with a text, if anything: longer than max, not UTF-8 (browsers
// drop a connection sent that, RFC 6455), or holding a rune bad (if set) refuses, said by badText.
func checkText(what, v string, max int, bad func(rune) bool, badText string) error {
	switch {
	case len(v) > max:
		return fmt.Errorf("%s longer than %d bytes", what, max)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case bad != nil && strings.ContainsFunc(v, bad):
		return fmt.Errorf("%s contains %s", what, badText)
	}
	return nil
}

// maxFrame is the largest frame a message can make: JSON escaping grows a string at most 6 times
// (a control character becomes \u00XX); 1024 bounds the field names, kind, time and sender id.
func maxFrame(s Settings) int { return 6*(s.MaxMessage+s.MaxRoomName) + 1024 }

// tokenBucket allows rate events per second and burst at once (rate <= 0: all), on one goroutine.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(rate float64, burst int) tokenBucket {
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take takes n tokens at time now, if there are so many.
func (b *tokenBucket) take(now time.Time, n float64) bool {
	if b.rate <= 0 {
		return true
	}
	b.tokens, b.last = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate), now // full at first
	ok := b.tokens >= n
	if ok {
		b.tokens -= n
	}
	return ok
}

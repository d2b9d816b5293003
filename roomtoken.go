package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// RoomToken returns a token that lets its holder join room and read its history until expiry, and
// with write also send to it: "<expiry unix seconds>.<hex HMAC-SHA256(secret, room|expiry[|write])>".
func RoomToken(secret, room string, expiry time.Time, write bool) string {
	exp := strconv.FormatInt(expiry.Unix(), 10)
	return exp + "." + hex.EncodeToString(roomMAC(secret, room, exp, write))
}

func roomMAC(secret, room, exp string, write bool) []byte {
	if write {
		exp += "|write"
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(room + "|" + exp))
	return m.Sum(nil)
}

// checkRoomToken reports what is wrong with token as a pass to room at time now, if anything: any
// token lets one read, only a write token lets one write.
func checkRoomToken(secret, room, token string, now time.Time, write bool) error {
	if token == "" {
		return errors.New("room token required")
	}
	exp, sig, ok := strings.Cut(token, ".")
	expiry, err := strconv.ParseInt(exp, 10, 64)
	mac, herr := hex.DecodeString(sig)
	if !ok || err != nil || herr != nil || len(mac) != sha256.Size {
		return errors.New("malformed room token (want <expiry>.<hex HMAC-SHA256>)")
	}
	switch {
	case hmac.Equal(mac, roomMAC(secret, room, exp, true)):
	case !hmac.Equal(mac, roomMAC(secret, room, exp, false)):
		return errors.New("wrong room token")
	case write:
		return errors.New("room token does not allow sending (want a write token)")
	}
	if now.Unix() >= expiry {
		return errors.New("room token expired")
	}
	return nil
}

package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Who may push: when Settings.PushToken is set, HTTP triggers and PushObj
// calls must carry it. Who may join: when Settings.RoomSecret is set, a room
// token signed with it is needed to subscribe to a room or read its history,
// and a write token to send to it.

// pushTokenHeader carries the push token of an HTTP trigger; the parameter
// "token" may carry it instead.
const pushTokenHeader = "X-Push-Token"

// checkPushToken reports whether got may push under s: always when no push
// token is configured, else when got is the token. Comparing fixed-size
// digests keeps the time independent of where, and whether in length, got
// differs.
func checkPushToken(s Settings, got string) bool {
	if s.PushToken == "" {
		return true
	}
	want := sha256.Sum256([]byte(s.PushToken))
	have := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(want[:], have[:]) == 1
}

// authorizePush answers a trigger that lacks the push token (401) or
// carries a wrong one (403), and reports whether the push may go on.
func (s *Server) authorizePush(w http.ResponseWriter, r *http.Request) bool {
	if s.settings.PushToken == "" {
		return true
	}
	got := r.Header.Get(pushTokenHeader)
	if got == "" {
		got = r.FormValue("token")
	}
	switch {
	case got == "":
		w.Header().Set("WWW-Authenticate", `Push-Token realm="push"`)
		http.Error(w, "push token required (header "+pushTokenHeader+" or parameter token)", http.StatusUnauthorized)
		return false
	case !checkPushToken(s.settings, got):
		s.log.Warn("push refused: wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
		http.Error(w, "wrong push token", http.StatusForbidden)
		return false
	}
	return true
}

// RoomToken returns a token that lets its holder join room and read its
// history until expiry:
// "<expiry unix seconds>.<hex HMAC-SHA256(secret, room + "|" + expiry)>".
// Browsers send it as subscribe|{"roomNum":"room1","token":"..."}.
func RoomToken(secret, room string, expiry time.Time) string {
	exp := strconv.FormatInt(expiry.Unix(), 10)
	return exp + "." + hex.EncodeToString(roomMAC(secret, room, exp, false))
}

// RoomWriteToken returns a token that also lets its holder send to room
// (sendByRoom) until expiry: the same form, with the HMAC of
// room + "|" + expiry + "|write".
func RoomWriteToken(secret, room string, expiry time.Time) string {
	exp := strconv.FormatInt(expiry.Unix(), 10)
	return exp + "." + hex.EncodeToString(roomMAC(secret, room, exp, true))
}

func roomMAC(secret, room, exp string, write bool) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(room + "|" + exp))
	if write {
		m.Write([]byte("|write"))
	}
	return m.Sum(nil)
}

// checkRoomToken reports what is wrong with token as a pass to room at time
// now, if anything: a read or a write token lets one read.
func checkRoomToken(secret, room, token string, now time.Time) error {
	return checkToken(secret, room, token, now, false)
}

// checkRoomWriteToken is checkRoomToken for sending: only a write token does.
func checkRoomWriteToken(secret, room, token string, now time.Time) error {
	return checkToken(secret, room, token, now, true)
}

func checkToken(secret, room, token string, now time.Time, write bool) error {
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

package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"

	"golang.org/x/net/websocket"
)

// WebSocket close codes for bad input (RFC 6455, section 7.4.1).
const (
	closeProtocolError = 1002 // a frame breaks the protocol
	closeUnsupported   = 1003 // a binary message: the protocol is text only
	closeBadData       = 1007 // a text message that is not valid UTF-8
	closePolicy        = 1008 // too many commands refused by the rate limit
	closeTooBig        = 1009 // a message over Settings.MaxMessage
)

// Frame opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// maxControlPayload is the longest payload of a close, ping or pong frame.
const maxControlPayload = 125

// keepBuffer is the largest message buffer kept between messages; a larger
// one, needed once for a big message, is let go.
const keepBuffer = 4 << 10

// closeError means the peer sent something the connection cannot go on
// after: it is closed with Code, and Reason goes in the close frame.
type closeError struct {
	Code   int
	Reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("websocket: %s (close %d)", e.Reason, e.Code) }

// errPeerClosed is returned once the peer's close frame has arrived.
var errPeerClosed = errors.New("websocket: closed by the peer")

// wsFrame is one frame as golang.org/x/net/websocket reads it: HeaderReader
// yields the raw header, Read the unmasked payload.
type wsFrame interface {
	io.Reader
	HeaderReader() io.Reader
}

// messageReader reassembles whole messages from a server-side connection's
// frames. x/net's Message.Receive hands out each frame of a fragmented
// message as a message of its own and leaves control frames to a handler
// that writes pongs from the reading goroutine; this reader does neither.
type messageReader struct {
	next  func() (wsFrame, error)
	limit int          // longest message, bytes
	ping  func([]byte) // gets each ping's payload, to be answered by the writer; may be nil
	buf   []byte
	cur   wsFrame // the frame being read

	peerClosed bool // the peer's close frame has been read
}

func newMessageReader(ws *websocket.Conn, limit int, ping func([]byte)) *messageReader {
	raw, _ := ws.Request().Context().Value(rawFramesKey{}).(*rawFrames)
	next := func() (wsFrame, error) {
		if err := raw.check(); err != nil {
			return nil, err
		}
		f, err := ws.NewFrameReader()
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return &messageReader{next: next, limit: limit, ping: ping}
}

// rawFrames is the reader x/net reads a connection's frames from, put in
// the handshake request's context (see idleWriter). x/net clears the top bit
// of a 64-bit length, which RFC 6455 requires to be 0; check sees it first.
type rawFrames struct{ br *bufio.Reader }

type rawFramesKey struct{}

// check refuses a next frame whose 64-bit length has the top bit set. It
// reads no further than x/net is about to.
func (raw *rawFrames) check() error {
	if raw == nil || raw.br == nil {
		return nil
	}
	if h, _ := raw.br.Peek(2); len(h) == 2 && h[1]&0x7f == 127 {
		if h, _ := raw.br.Peek(3); len(h) == 3 && h[2]&0x80 != 0 {
			return &closeError{closeProtocolError, "64-bit frame length with the top bit set"}
		}
	}
	return nil
}

// frameHeader is the part of a frame header that the reader checks.
type frameHeader struct {
	fin, rsv, masked bool
	opcode           byte
	length           uint64
}

// maxFrameHeader is the longest frame header: 2 bytes, a 64-bit length and
// a masking key.
const maxFrameHeader = 14

// readFrameHeader parses the header that x/net read for frame f.
func readFrameHeader(f wsFrame) (frameHeader, error) {
	hr := f.HeaderReader()
	if hr == nil {
		return frameHeader{}, &closeError{closeProtocolError, "short frame header"}
	}
	var b [maxFrameHeader]byte
	n, err := io.ReadFull(hr, b[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return frameHeader{}, err
	}
	return parseFrameHeader(b[:n])
}

func parseFrameHeader(h []byte) (frameHeader, error) {
	if len(h) < 2 {
		return frameHeader{}, &closeError{closeProtocolError, "short frame header"}
	}
	fh := frameHeader{
		fin:    h[0]&0x80 != 0,
		rsv:    h[0]&0x70 != 0,
		opcode: h[0] & 0x0f,
		masked: h[1]&0x80 != 0,
		length: uint64(h[1] & 0x7f),
	}
	ext := h[2:]
	switch fh.length {
	case 126:
		if len(ext) < 2 {
			return fh, &closeError{closeProtocolError, "short frame header"}
		}
		fh.length = uint64(binary.BigEndian.Uint16(ext))
	case 127:
		if len(ext) < 8 {
			return fh, &closeError{closeProtocolError, "short frame header"}
		}
		fh.length = binary.BigEndian.Uint64(ext) // x/net has cleared the top bit
	}
	return fh, nil
}

// read returns the next whole text message. The slice is valid until the
// next call. A *closeError says how to close the connection; errPeerClosed
// that the peer closed it; any other error is the connection's own.
func (r *messageReader) read() ([]byte, error) {
	if cap(r.buf) > keepBuffer {
		r.buf = nil
	}
	msg := r.buf[:0]
	var op byte // opcode of the message being read; 0 between messages
	for {
		f, err := r.next()
		if err != nil {
			return nil, err
		}
		r.cur = f
		h, err := readFrameHeader(f)
		if err != nil {
			return nil, err
		}
		switch {
		case !h.masked:
			return nil, &closeError{closeProtocolError, "unmasked frame from a client"}
		case h.rsv:
			return nil, &closeError{closeProtocolError, "reserved bits set without an extension"}
		}
		switch h.opcode {
		case opClose, opPing, opPong:
			if !h.fin || h.length > maxControlPayload {
				return nil, &closeError{closeProtocolError, "fragmented or long control frame"}
			}
			var p [maxControlPayload]byte
			if _, err := io.ReadFull(f, p[:h.length]); err != nil {
				return nil, err
			}
			switch h.opcode {
			case opClose:
				r.peerClosed = true
				if err := checkClose(p[:h.length]); err != nil {
					return nil, err
				}
				return nil, errPeerClosed
			case opPing:
				if r.ping != nil {
					r.ping(append([]byte(nil), p[:h.length]...))
				}
			}
			continue
		case opContinuation:
			if op == 0 {
				return nil, &closeError{closeProtocolError, "continuation frame without a message"}
			}
		case opText, opBinary:
			if op != 0 {
				return nil, &closeError{closeProtocolError, "new message before the last one ended"}
			}
			if h.opcode == opBinary {
				return nil, &closeError{closeUnsupported, "binary message: the protocol is text"}
			}
			op = h.opcode
		default:
			return nil, &closeError{closeProtocolError, fmt.Sprintf("reserved opcode %d", h.opcode)}
		}
		if h.length > uint64(r.limit-len(msg)) {
			return nil, &closeError{closeTooBig, fmt.Sprintf("message longer than %d bytes", r.limit)}
		}
		n := len(msg)
		msg = slices.Grow(msg, int(h.length))[:n+int(h.length)]
		if _, err := io.ReadFull(f, msg[n:]); err != nil {
			return nil, err
		}
		r.buf = msg
		if !h.fin {
			continue
		}
		if !utf8.Valid(msg) {
			return nil, &closeError{closeBadData, "text message is not valid UTF-8"}
		}
		return msg, nil
	}
}

// discard reads and drops the rest of the current frame and every frame
// after it until the peer's close frame, which answers the one sent after a
// *closeError. It returns when that frame arrives or the connection fails.
func (r *messageReader) discard() {
	f := r.cur
	for f != nil && !r.peerClosed {
		if _, err := io.Copy(io.Discard, f); err != nil {
			return
		}
		var err error
		if f, err = r.next(); err != nil {
			return
		}
		if h, err := readFrameHeader(f); err != nil || h.opcode == opClose {
			return
		}
	}
}

// checkClose checks the payload of a close frame from the peer (RFC 6455,
// sections 5.5.1 and 7.4): empty, or a code that may be sent and a UTF-8
// reason.
func checkClose(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if len(p) == 1 {
		return &closeError{closeProtocolError, "close frame with a 1-byte payload"}
	}
	switch code := binary.BigEndian.Uint16(p); {
	case code < 1000, code >= 5000, code >= 1016 && code < 3000,
		code == 1004, code == 1005, code == 1006, code == 1015:
		return &closeError{closeProtocolError, fmt.Sprintf("close code %d may not be sent", code)}
	}
	if !utf8.Valid(p[2:]) {
		return &closeError{closeBadData, "close reason is not valid UTF-8"}
	}
	return nil
}

// appendFrame appends one unfragmented server frame (RFC 6455, section 5.2):
// FIN and the opcode, the payload length in 7, 16 or 64 bits, no mask.
func appendFrame(b []byte, opcode byte, payload []byte) []byte {
	b = append(b, 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

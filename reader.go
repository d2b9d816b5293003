package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// closeError is why a connection is closed: the peer's input it cannot go on after, or stop's cause.
type closeError struct {
	Code   int
	Reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("websocket: %s (close %d)", e.Reason, e.Code) }

var errPeerClosed = errors.New("websocket: closed by the peer")

// msgPool holds the buffers messages are read into, so that a connection between messages holds none.
var msgPool = sync.Pool{New: func() any { return new([]byte) }}

// messageReader reads a client's frames straight from the connection (RFC 6455, section 5) and
// reassembles its messages; pings go to ping, pongs are dropped.
type messageReader struct {
	src        io.Reader    // the connection
	limit      int          // longest message, bytes
	ping       func([]byte) // gets each ping's payload; may be nil
	buf        *[]byte      // the message being read, from msgPool; nil between messages
	hdr        [14]byte     // the longest header: 2 bytes, a 64-bit length, a mask
	mask       [4]byte      // the current frame's
	left       int64        // payload bytes of the current frame not read yet
	have       int          // bytes of the next frame's header in hdr, read by wait
	peerClosed bool         // the peer's close frame has been read
}

// wait blocks until the next frame begins, and reads the first bytes of its header. Called between
// messages from a shallow frame, it keeps a waiting connection's stack within the least a goroutine
// starts with.
func (r *messageReader) wait() error {
	for r.have == 0 {
		n, err := r.src.Read(r.hdr[:2])
		if r.have = n; err != nil && n == 0 {
			return err
		}
	}
	return nil
}

// next reads the next frame's header.
func (r *messageReader) next() (fin bool, op byte, n int64, err error) {
	h, from := r.hdr[:], r.have
	r.have = 0
	if _, err := io.ReadFull(r.src, h[from:2]); err != nil {
		return false, 0, 0, err
	}
	ext, mask := 0, 0
	switch h[1] & 0x7f {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if h[1]&0x80 != 0 {
		mask = 4
	}
	if _, err := io.ReadFull(r.src, h[2:2+ext+mask]); err != nil {
		return false, 0, 0, err
	}
	switch n = int64(h[1] & 0x7f); ext {
	case 2:
		n = int64(binary.BigEndian.Uint16(h[2:]))
	case 8:
		n = int64(binary.BigEndian.Uint64(h[2:]) &^ (1 << 63))
	}
	r.left = n
	copy(r.mask[:], h[2+ext:])
	switch {
	case ext == 8 && h[2]&0x80 != 0:
		return false, 0, 0, &closeError{closeProtocolError, "64-bit frame length with the top bit set"}
	case mask == 0:
		return false, 0, 0, &closeError{closeProtocolError, "unmasked frame from a client"}
	case h[0]&0x70 != 0:
		return false, 0, 0, &closeError{closeProtocolError, "reserved bits set without an extension"}
	}
	return h[0]&0x80 != 0, h[0] & 0x0f, n, nil
}

// payload reads the current frame's payload, len(p) bytes, and unmasks it.
func (r *messageReader) payload(p []byte) error {
	if _, err := io.ReadFull(r.src, p); err != nil {
		return err
	}
	for i := range p {
		p[i] ^= r.mask[i&3]
	}
	r.left = 0
	return nil
}

// read returns the next text message, valid until the next call. A *closeError says how to close
// the connection; errPeerClosed that the peer closed it.
func (r *messageReader) read() ([]byte, error) {
	r.release()
	var msg []byte
	var op byte // opcode of the message being read; 0 between messages
	for {
		fin, opcode, n, err := r.next()
		if err != nil {
			return nil, err
		}
		switch opcode {
		case opClose, opPing, opPong:
			if !fin || n > maxControlPayload {
				return nil, &closeError{closeProtocolError, "fragmented or long control frame"}
			}
			var p [maxControlPayload]byte
			if err := r.payload(p[:n]); err != nil {
				return nil, err
			}
			if opcode == opClose {
				// Empty, or a code that may be sent and a UTF-8 reason (RFC 6455, 5.5.1 and 7.4).
				r.peerClosed = true
				code := uint16(closeNormal)
				if n > 1 {
					code = binary.BigEndian.Uint16(p[:])
				}
				switch {
				case n == 1:
					return nil, &closeError{closeProtocolError, "close frame with a 1-byte payload"}
				case code < 1000, code >= 5000, code >= 1016 && code < 3000,
					code == 1004, code == 1005, code == 1006, code == 1015:
					return nil, &closeError{closeProtocolError, fmt.Sprintf("close code %d may not be sent", code)}
				case n > 2 && !utf8.Valid(p[2:n]):
					return nil, &closeError{closeBadData, "close reason is not valid UTF-8"}
				}
				return nil, errPeerClosed
			}
			if opcode == opPing && r.ping != nil {
				r.ping(p[:n])
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
			if opcode == opBinary {
				return nil, &closeError{closeUnsupported, "binary message: the protocol is text"}
			}
			op = opcode
		default:
			return nil, &closeError{closeProtocolError, fmt.Sprintf("reserved opcode %d", opcode)}
		}
		if n > int64(r.limit-len(msg)) {
			return nil, &closeError{closeTooBig, fmt.Sprintf("message longer than %d bytes", r.limit)}
		}
		if r.buf == nil {
			r.buf = msgPool.Get().(*[]byte)
			msg = (*r.buf)[:0]
		}
		l := len(msg)
		msg = slices.Grow(msg, int(n))[:l+int(n)]
		*r.buf = msg
		if err := r.payload(msg[l:]); err != nil {
			return nil, err
		}
		switch {
		case !fin:
		case !utf8.Valid(msg):
			return nil, &closeError{closeBadData, "text message is not valid UTF-8"}
		default:
			return msg, nil
		}
	}
}

// release puts the last message's buffer back in the pool, unless it grew past keepBuffer.
func (r *messageReader) release() {
	if r.buf != nil && cap(*r.buf) <= keepBuffer {
		msgPool.Put(r.buf)
	}
	r.buf = nil
}

// discard drops the rest of the current frame and every frame after it until the peer's close
// frame, which answers the one sent after a *closeError, or the connection fails.
func (r *messageReader) discard() {
	r.release()
	for !r.peerClosed {
		if _, err := io.CopyN(io.Discard, r.src, r.left); err != nil {
			return
		}
		if _, op, _, err := r.next(); err != nil || op == opClose {
			return
		}
	}
}

// idleReader reads the connection, after the bytes net/http read ahead of the frames; any byte read
// moves the read deadline on: control frames are traffic.
type idleReader struct {
	nc    net.Conn
	idle  time.Duration
	ahead []byte
}

func (r *idleReader) Read(p []byte) (int, error) {
	if len(r.ahead) > 0 {
		n := copy(p, r.ahead)
		if r.ahead = r.ahead[n:]; len(r.ahead) == 0 {
			r.ahead = nil
		}
		return n, nil
	}
	n, err := r.nc.Read(p)
	if n > 0 {
		r.nc.SetReadDeadline(deadline(r.idle))
	}
	return n, err
}

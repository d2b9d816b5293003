package tars

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// TestFrameReaderTCP sends frames of several sizes over a loopback TCP
// connection, one of them larger than the reader's growth step.
func TestFrameReaderTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	bodies := [][]byte{nil, []byte("x"), bytes.Repeat([]byte("0123456789"), 30_000), []byte("after the big one")}
	sent := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		var out []byte
		for i, body := range bodies {
			p := RequestPacket{RequestID: int32(i), Buffer: body}
			out = p.AppendFrame(out)
		}
		_, err = c.Write(out)
		sent <- err
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fr := FrameReader{R: bufio.NewReader(c)}
	for i, want := range bodies {
		body, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		var p RequestPacket
		if err := p.Decode(body); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if p.RequestID != int32(i) || !bytes.Equal(p.Buffer, want) {
			t.Fatalf("frame %d: id %d, %d bytes", i, p.RequestID, len(p.Buffer))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFrameReaderErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		max  int
		want string
	}{
		{"length 3", []byte{0, 0, 0, 3}, 0, "tars: frame length 3 is below the 4-byte minimum"},
		{"length 0", []byte{0, 0, 0, 0, 1, 2, 3}, 0, "tars: frame length 0 is below the 4-byte minimum"},
		{"over the default", []byte{0, 0xA0, 0, 1}, 0, "tars: frame length 10485761 exceeds the limit of 10485760 bytes"},
		{"over a set max", []byte{0, 0, 0, 9, 1, 2, 3, 4, 5}, 8, "tars: frame length 9 exceeds the limit of 8 bytes"},
		{"largest length", []byte{0xFF, 0xFF, 0xFF, 0xFF}, 0, "tars: frame length 4294967295 exceeds the limit of 10485760 bytes"},
	} {
		fr := FrameReader{R: bytes.NewReader(c.in), Max: c.max}
		_, err := fr.Next()
		var fe *FrameError
		if !errors.As(err, &fe) || err.Error() != c.want {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
	// Streams ending inside a frame.
	for _, in := range [][]byte{{0, 0}, {0, 0, 0, 8, 1}, {0, 0, 0, 8}} {
		fr := FrameReader{R: bytes.NewReader(in)}
		if _, err := fr.Next(); err != io.ErrUnexpectedEOF {
			t.Errorf("%X: got %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
	// A frame of exactly Max bytes is accepted.
	fr := FrameReader{R: bytes.NewReader([]byte{0, 0, 0, 6, 'h', 'i'}), Max: 6}
	if body, err := fr.Next(); err != nil || string(body) != "hi" {
		t.Fatalf("got %q, %v", body, err)
	}
}

// TestFrameReaderPartial: no prefix of a frame reads as a frame; the whole
// frame reads as its body, and what follows it as a cut frame.
func TestFrameReaderPartial(t *testing.T) {
	p := ResponsePacket{RequestID: 5}
	frame := p.AppendFrame(nil)
	for i := range len(frame) {
		want := io.ErrUnexpectedEOF
		if i == 0 {
			want = io.EOF
		}
		fr := FrameReader{R: bytes.NewReader(frame[:i])}
		if body, err := fr.Next(); body != nil || err != want {
			t.Fatalf("prefix of %d: %X, %v", i, body, err)
		}
	}
	stream := append(append([]byte(nil), frame...), frame[:3]...)
	fr := FrameReader{R: bytes.NewReader(stream)}
	if body, err := fr.Next(); err != nil || !bytes.Equal(body, frame[4:]) {
		t.Fatalf("got %X, %v", body, err)
	}
	if _, err := fr.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("after the frame: %v", err)
	}
}

// TestFrameReaderReleasesLargeBuffer: after a large frame, a small one does
// not keep the large buffer alive.
func TestFrameReaderReleasesLargeBuffer(t *testing.T) {
	big := RequestPacket{Buffer: make([]byte, 1<<20)}
	small := RequestPacket{RequestID: 1}
	fr := FrameReader{R: bytes.NewReader(small.AppendFrame(big.AppendFrame(nil)))}
	for i := range 2 {
		if _, err := fr.Next(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if c := cap(fr.buf); c > 64<<10 {
		t.Fatalf("buffer of %d bytes kept after a small frame", c)
	}
}

package tars

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

// FuzzRequestPacket: any input decodes or fails cleanly, and what decodes
// re-encodes to a canonical form that decodes to the same bytes again.
func FuzzRequestPacket(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var p RequestPacket
		if p.Decode(body) != nil {
			return
		}
		b := p.Append(nil)
		var q RequestPacket
		if err := q.Decode(b); err != nil {
			t.Fatalf("re-encoded packet does not decode: %v", err)
		}
		if c := q.Append(nil); !bytes.Equal(c, b) {
			t.Fatalf("encoding not stable:\n%X\n%X", b, c)
		}
	})
}

// FuzzResponsePacket is FuzzRequestPacket for responses.
func FuzzResponsePacket(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var p ResponsePacket
		if p.Decode(body) != nil {
			return
		}
		b := p.Append(nil)
		var q ResponsePacket
		if err := q.Decode(b); err != nil {
			t.Fatalf("re-encoded packet does not decode: %v", err)
		}
		if c := q.Append(nil); !bytes.Equal(c, b) {
			t.Fatalf("encoding not stable:\n%X\n%X", b, c)
		}
	})
}

// splitFrame finds the first frame in b, as FrameReader would: its body and
// total length, or n == 0 when b does not hold a whole frame yet.
func splitFrame(b []byte, limit int) (body []byte, n int, err error) {
	if len(b) < 4 {
		return nil, 0, nil
	}
	if limit <= 0 {
		limit = DefaultMaxPacket
	}
	length := int64(binary.BigEndian.Uint32(b))
	if length < 4 || length > int64(limit) {
		return nil, 0, &FrameError{Length: length, Max: limit}
	}
	if int64(len(b)) < length {
		return nil, 0, nil
	}
	return b[4:length:length], int(length), nil
}

// FuzzReadFrame: FrameReader on a stream and splitFrame on the same bytes
// find the same frames, none longer than the limit.
func FuzzReadFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		fr := FrameReader{R: bytes.NewReader(stream), Max: int(limit)}
		rest := stream
		for {
			body, err := fr.Next()
			want, n, serr := splitFrame(rest, int(limit))
			if err != nil {
				var fe *FrameError
				if n > 0 || errors.As(err, &fe) != (serr != nil) {
					t.Fatalf("FrameReader: %v; splitFrame: %d, %v", err, n, serr)
				}
				return
			}
			if serr != nil || n == 0 || !bytes.Equal(body, want) {
				t.Fatalf("FrameReader read %X; splitFrame: %X, %d, %v", body, want, n, serr)
			}
			if lim := int(limit); lim == 0 && len(body) > DefaultMaxPacket-4 || lim > 0 && len(body) > lim-4 {
				t.Fatalf("body of %d bytes over the limit %d", len(body), lim)
			}
			rest = rest[n:]
		}
	})
}

// FuzzDecoderSkip walks any input value by value: heads and values stay in
// bounds, and a value's length depends only on its own bytes.
func FuzzDecoderSkip(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		for off := 0; off < len(b); {
			_, typ, n, err := consumeHead(b[off:])
			if err != nil {
				if n != -1 {
					t.Fatalf("consumeHead error with n = %d", n)
				}
				return
			}
			off += n
			m, err := skipValue(b[off:], typ)
			if err != nil {
				if m != -1 {
					t.Fatalf("skipValue error with n = %d", m)
				}
				return
			}
			if m < 0 || off+m > len(b) {
				t.Fatalf("skipValue = %d at %d of %d", m, off, len(b))
			}
			if again, err := skipValue(b[off:off+m], typ); again != m || err != nil {
				t.Fatalf("skipValue on the value alone = %d, %v; want %d", again, err, m)
			}
			off += m
		}
	})
}

// FuzzRequestContext: any bytes in place of a request's context and status
// maps decode within MaxContextLen and MaxContextBytes or fail cleanly, and
// what decodes re-encodes to maps that decode the same.
func FuzzRequestContext(f *testing.F) {
	f.Add([]byte{0x98, 0x0C, 0xA8, 0x0C})
	f.Add(AppendStringMap(AppendStringMap(nil, 9, map[string]string{"token": "s3cret"}), 10, map[string]string{"STATUS_DYED_KEY": "x"}))
	f.Add(append(AppendInt(AppendHead(nil, 9, TypeMap), 0, 1<<30), bytes.Repeat([]byte{0x06, 0x00, 0x16, 0x00}, 100)...))
	f.Add(AppendInt(AppendHead(nil, 10, TypeMap), 0, -1))
	prefix := (&RequestPacket{Version: VersionTars, RequestID: 1, ServantName: "S", FuncName: "f"}).Append(nil)
	prefix = prefix[:len(prefix)-4] // without its empty context and status
	f.Fuzz(func(t *testing.T, maps []byte) {
		var p RequestPacket
		if p.Decode(append(prefix[:len(prefix):len(prefix)], maps...)) != nil {
			return
		}
		for _, m := range []map[string]string{p.Context, p.Status} {
			size := 0
			for k, v := range m {
				size += len(k) + len(v)
			}
			if len(m) > MaxContextLen || size > MaxContextBytes {
				t.Fatalf("decoded a map of %d entries, %d bytes", len(m), size)
			}
		}
		var q RequestPacket
		if err := q.Decode(p.Append(nil)); err != nil || !reflect.DeepEqual(q.Context, p.Context) || !reflect.DeepEqual(q.Status, p.Status) {
			t.Fatalf("re-encoded maps: %v; %v, %v", err, q.Context, q.Status)
		}
	})
}

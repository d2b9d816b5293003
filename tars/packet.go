package tars

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unique"
)

// Packet versions (iVersion): how sBuffer carries the arguments; and a packet type.
const (
	VersionTars int16 = 1 // parameter i at tag i
	VersionTUP  int16 = 3 // a map<string,vector<byte>> of named parameters at tag 0
	VersionJSON int16 = 5 // a JSON object of named parameters

	PacketOneway int8 = 1 // the packet type (cPacketType) of a call that gets no response; 0 is a normal one
)

const (
	// DefaultMaxPacket is the largest frame accepted by default, as in TarsGo.
	DefaultMaxPacket = 10 << 20
	// A packet's context and status maps carry a few short entries (tracing,
	// dyeing, a token); a packet whose maps exceed these does not decode.
	MaxContextLen   = 64       // entries in each map
	MaxContextBytes = 64 << 10 // bytes of keys and values in each map
	maxName         = 64       // longer servant and function names are not interned
)

// Return codes (iRet).
const (
	Success            int32 = 0
	ServerDecodeErr    int32 = -1 // the server could not decode the arguments
	ServerEncodeErr    int32 = -2
	ServerNoFuncErr    int32 = -3 // no such function
	ServerNoServantErr int32 = -4 // no such servant
	ServerQueueTimeout int32 = -6 // the request waited longer than its timeout
	InvokeTimeout      int32 = -7
	ProxyConnectErr    int32 = -8
	ClientDecodeErr    int32 = -12
	SendRequestErr     int32 = -13
	ServerUnknownErr   int32 = -99 // sResultDesc carries the text
)

// codeTexts names the return codes in CallError messages, also those this package never sets.
var codeTexts = map[int32]string{ServerDecodeErr: "server decode error", ServerEncodeErr: "server encode error",
	ServerNoFuncErr: "no such function", ServerNoServantErr: "no such servant", -5: "reset grid",
	ServerQueueTimeout: "server queue timeout", InvokeTimeout: "invoke timeout", ProxyConnectErr: "proxy connect error",
	-9: "server overload", -10: "adapter null", -11: "invoke by invalid set",
	ClientDecodeErr: "client decode error", SendRequestErr: "send request error", ServerUnknownErr: "unknown server error"}

// RequestPacket is a call: the fields of tags 1 to 10, all required.
type RequestPacket struct {
	Version     int16  // 1
	PacketType  int8   // 2
	MessageType int32  // 3
	RequestID   int32  // 4
	ServantName string // 5
	FuncName    string // 6
	Buffer      []byte // 7, the encoded arguments
	Timeout     int32  // 8, milliseconds
	Context     map[string]string
	Status      map[string]string
}

// Append appends the packet body (no length prefix). Context and Status are
// always written, even empty, because TarsGo requires them.
func (p *RequestPacket) Append(b []byte) []byte {
	b = AppendInt(b, 1, int64(p.Version))
	b = AppendInt(b, 2, int64(p.PacketType))
	b = AppendInt(b, 3, int64(p.MessageType))
	b = AppendInt(b, 4, int64(p.RequestID))
	b = AppendString(b, 5, p.ServantName)
	b = AppendString(b, 6, p.FuncName)
	b = AppendBytes(b, 7, p.Buffer)
	b = AppendInt(b, 8, int64(p.Timeout))
	b = AppendStringMap(b, 9, p.Context)
	return AppendStringMap(b, 10, p.Status)
}

// AppendFrame appends the packet with its length prefix, ready to send.
func (p *RequestPacket) AppendFrame(b []byte) []byte {
	return endFrame(p.Append(append(b, 0, 0, 0, 0)), len(b))
}

// Decode replaces p with the packet in body. Buffer aliases body.
func (p *RequestPacket) Decode(body []byte) error {
	*p = RequestPacket{}
	d := Decoder{buf: body, MaxLen: MaxContextLen} // the maps are its only lists
	return cmp.Or(
		d.ReadInt16(&p.Version, 1, true),
		d.ReadInt8(&p.PacketType, 2, true),
		d.ReadInt32(&p.MessageType, 3, true),
		d.ReadInt32(&p.RequestID, 4, true),
		d.readName(&p.ServantName, 5, true),
		d.readName(&p.FuncName, 6, true),
		d.ReadBytes(&p.Buffer, 7, true),
		d.ReadInt32(&p.Timeout, 8, true),
		readMap(&d, &p.Context, 9, true, MaxContextBytes),
		readMap(&d, &p.Status, 10, true, MaxContextBytes),
	)
}

// intern returns b as a string, interned unless long: a server sees the same
// few servant and function names again and again, and a known one copies nothing.
func intern(b []byte) string {
	if len(b) > maxName {
		return string(b)
	}
	return unique.Make(string(b)).Value()
}

// ResponsePacket is a reply to a call, or a push when RequestID is 0.
type ResponsePacket struct {
	Version     int16             // 1
	PacketType  int8              // 2
	RequestID   int32             // 3
	MessageType int32             // 4
	Ret         int32             // 5, a return code
	Buffer      []byte            // 6, the encoded results
	Status      map[string]string // 7
	ResultDesc  string            // 8, optional: the error text
	Context     map[string]string // 9, optional
}

// Append appends the packet body (no length prefix), leaving out optional fields when empty.
func (p *ResponsePacket) Append(b []byte) []byte {
	b = AppendInt(b, 1, int64(p.Version))
	b = AppendInt(b, 2, int64(p.PacketType))
	b = AppendInt(b, 3, int64(p.RequestID))
	b = AppendInt(b, 4, int64(p.MessageType))
	b = AppendInt(b, 5, int64(p.Ret))
	b = AppendBytes(b, 6, p.Buffer)
	b = AppendStringMap(b, 7, p.Status)
	if p.ResultDesc != "" {
		b = AppendString(b, 8, p.ResultDesc)
	}
	if len(p.Context) > 0 {
		b = AppendStringMap(b, 9, p.Context)
	}
	return b
}

// AppendFrame appends the packet with its length prefix, ready to send.
func (p *ResponsePacket) AppendFrame(b []byte) []byte {
	return endFrame(p.Append(append(b, 0, 0, 0, 0)), len(b))
}

// Decode replaces p with the packet in body. Buffer aliases body.
func (p *ResponsePacket) Decode(body []byte) error {
	*p = ResponsePacket{}
	d := Decoder{buf: body, MaxLen: MaxContextLen} // the maps are its only lists
	return cmp.Or(
		d.ReadInt16(&p.Version, 1, true),
		d.ReadInt8(&p.PacketType, 2, true),
		d.ReadInt32(&p.RequestID, 3, true),
		d.ReadInt32(&p.MessageType, 4, true),
		d.ReadInt32(&p.Ret, 5, true),
		d.ReadBytes(&p.Buffer, 6, true),
		readMap(&d, &p.Status, 7, true, MaxContextBytes),
		d.ReadString(&p.ResultDesc, 8, false),
		readMap(&d, &p.Context, 9, false, MaxContextBytes),
	)
}

// endFrame writes the length of the frame at b[start:]: a frame is a 4-byte
// big-endian length, counting itself, then a packet body.
func endFrame(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// FrameError reports a frame length outside [4, Max]. The connection that
// sent it cannot be resynchronised and should be closed.
type FrameError struct {
	Length int64 // the length field as received
	Max    int   // the limit in force
}

func (e *FrameError) Error() string {
	if e.Length < 4 {
		return fmt.Sprintf("tars: frame length %d is below the 4-byte minimum", e.Length)
	}
	return fmt.Sprintf("tars: frame length %d exceeds the limit of %d bytes", e.Length, e.Max)
}

// FrameReader reads frames from a stream (a bufio.Reader saves system calls), reusing one buffer.
type FrameReader struct {
	R   io.Reader
	Max int // largest frame accepted, length prefix included; 0 means DefaultMaxPacket

	buf []byte
}

// Next reads one frame and returns its body, valid until the next call. A
// length below 4 or above Max is a *FrameError. The end of the stream is
// io.EOF at a frame boundary, io.ErrUnexpectedEOF inside a frame.
func (f *FrameReader) Next() ([]byte, error) {
	var prefix [4]byte
	if _, err := io.ReadFull(f.R, prefix[:]); err != nil {
		return nil, err
	}
	length := int64(binary.BigEndian.Uint32(prefix[:]))
	limit := cmp.Or(max(f.Max, 0), DefaultMaxPacket)
	if length < 4 || length > int64(limit) {
		return nil, &FrameError{Length: length, Max: limit}
	}
	size := int(length) - 4
	// Grow the buffer as bytes arrive, so a large frame costs memory only once
	// sent, and drop it when frames are small again.
	const step = 64 << 10
	if cap(f.buf) > step && size <= step {
		f.buf = nil
	}
	f.buf = f.buf[:0]
	for len(f.buf) < size {
		chunk := min(size-len(f.buf), max(len(f.buf), step))
		f.buf = slices.Grow(f.buf, chunk)
		n, err := io.ReadFull(f.R, f.buf[len(f.buf):len(f.buf)+chunk])
		f.buf = f.buf[:len(f.buf)+n]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return f.buf, nil
}

// The status keys of a TUP reply for a non-zero return code and its text.
const (
	StatusResultCode = "STATUS_RESULT_CODE"
	StatusResultDesc = "STATUS_RESULT_DESC"
)

// TUPReply returns the reply to the TUP request req: as in TarsCpp, a
// RequestPacket echoing its ids and names, the results by name in Buffer,
// a non-zero code and its description in Status.
func TUPReply(req *RequestPacket, code int32, desc string, values map[string][]byte) RequestPacket {
	rsp := *req
	rsp.Buffer, rsp.Timeout, rsp.Context, rsp.Status = AppendTUP(nil, values), 0, nil, nil
	if code != Success {
		rsp.Status = map[string]string{StatusResultCode: strconv.Itoa(int(code)), StatusResultDesc: desc}
	}
	return rsp
}

// TUPResult returns the return code and description of a TUP reply; no code means Success.
func TUPResult(rsp *RequestPacket) (code int32, desc string, err error) {
	s, ok := rsp.Status[StatusResultCode]
	if !ok {
		return Success, "", nil
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, "", decodeErr(-1, 10, "status %s is not an int32: %q", StatusResultCode, s)
	}
	return int32(n), rsp.Status[StatusResultDesc], nil
}

package tars

import "strconv"

// TUP (packet version 3) carries arguments by name: sBuffer is one
// map<string,vector<byte>> at tag 0, each value the parameter encoded alone
// at tag 0. A reply holds the return value under both "" and "tars_ret".

// Status keys of a TUP reply that carry a non-zero return code.
const (
	StatusResultCode = "STATUS_RESULT_CODE"
	StatusResultDesc = "STATUS_RESULT_DESC"
)

// DecodeTUP reads the argument map of a TUP sBuffer. The values alias sBuffer.
func DecodeTUP(sBuffer []byte) (map[string][]byte, error) {
	var m map[string][]byte
	if err := NewDecoder(sBuffer).ReadBytesMap(&m, 0, true); err != nil {
		return nil, err
	}
	return m, nil
}

// AppendTUP appends m as a TUP sBuffer, keys in sorted order.
func AppendTUP(b []byte, m map[string][]byte) []byte {
	return AppendBytesMap(b, 0, m)
}

// TUPValue returns a Decoder over the value named name; read it at tag 0.
func TUPValue(m map[string][]byte, name string) (*Decoder, error) {
	v, ok := m[name]
	if !ok {
		return nil, &DecodeError{Offset: -1, Tag: -1, What: "TUP has no value named " + strconv.Quote(name)}
	}
	return NewDecoder(v), nil
}

// TUPString reads the string named name.
func TUPString(m map[string][]byte, name string) (string, error) {
	var s string
	d, err := TUPValue(m, name)
	if err == nil {
		err = d.ReadString(&s, 0, true)
	}
	return s, err
}

// TUPInt32 reads the int named name.
func TUPInt32(m map[string][]byte, name string) (int32, error) {
	var v int32
	d, err := TUPValue(m, name)
	if err == nil {
		err = d.ReadInt32(&v, 0, true)
	}
	return v, err
}

// TUPReply returns the reply to the TUP request req. As TarsCpp does, it is
// laid out as a RequestPacket echoing the request's ids and names; a non-zero
// code and its description go into Status. values holds the results by name.
func TUPReply(req *RequestPacket, code int32, desc string, values map[string][]byte) RequestPacket {
	rsp := RequestPacket{
		Version:     req.Version,
		PacketType:  req.PacketType,
		MessageType: req.MessageType,
		RequestID:   req.RequestID,
		ServantName: req.ServantName,
		FuncName:    req.FuncName,
		Buffer:      AppendTUP(nil, values),
	}
	if code != Success {
		rsp.Status = map[string]string{StatusResultCode: strconv.Itoa(int(code)), StatusResultDesc: desc}
	}
	return rsp
}

// TUPResult returns the return code and description of a TUP reply (a
// missing code means Success).
func TUPResult(rsp *RequestPacket) (code int32, desc string, err error) {
	s, ok := rsp.Status[StatusResultCode]
	if !ok {
		return Success, "", nil
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, "", &DecodeError{Offset: -1, Tag: 10, What: "status " + StatusResultCode + " is not an int32: " + strconv.Quote(s)}
	}
	return int32(n), rsp.Status[StatusResultDesc], nil
}

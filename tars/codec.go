package tars

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
)

// The Tars wire format: each value is a head, then its payload. The head is
// tag<<4 | type for a tag below 15, else the two bytes 0xF0 | type, tag.
// Numbers are big-endian; integers take the narrowest type that holds them.
// A struct is its fields in ascending tag order; readers skip fields they do
// not know. Decoders check every length against the bytes left.

// Type codes, the low four bits of a head.
const (
	TypeInt1        byte = 0  // 1-byte signed integer
	TypeInt2        byte = 1  // 2-byte signed integer
	TypeInt4        byte = 2  // 4-byte signed integer
	TypeInt8        byte = 3  // 8-byte signed integer
	TypeFloat       byte = 4  // IEEE-754 binary32
	TypeDouble      byte = 5  // IEEE-754 binary64
	TypeString1     byte = 6  // 1-byte length, bytes
	TypeString4     byte = 7  // 4-byte length, bytes
	TypeMap         byte = 8  // count at tag 0, then key at tag 0 and value at tag 1, count times
	TypeList        byte = 9  // count at tag 0, then elements at tag 0
	TypeStructBegin byte = 10 // fields, then STRUCT_END
	TypeStructEnd   byte = 11 // no payload
	TypeZero        byte = 12 // no payload: the number 0
	TypeSimpleList  byte = 13 // vector<byte>: head 00, length at tag 0, bytes
)

const (
	// MaxDepth bounds the nesting a decoder follows, so input cannot exhaust the stack.
	MaxDepth = 100
	// DefaultMaxLen is the most elements a list or map may have unless Decoder.MaxLen
	// says otherwise: an element can take far more memory than its bytes (an empty struct is 2).
	DefaultMaxLen = 1 << 16
	preSize       = 16 // the most capacity given from a count read off the wire
)

var (
	typeNames = [...]string{"INT1", "INT2", "INT4", "INT8", "FLOAT", "DOUBLE", "STRING1", "STRING4",
		"MAP", "LIST", "STRUCT_BEGIN", "STRUCT_END", "ZERO", "SIMPLE_LIST"}
	numberSize = [...]int{1, 2, 4, 8, 4, 8, TypeZero: 0} // payload bytes of a number
)

// AppendHead appends the head of a value of type typ at tag.
func AppendHead(b []byte, tag uint8, typ byte) []byte {
	if tag < 15 {
		return append(b, tag<<4|typ)
	}
	return append(b, 0xF0|typ, tag)
}

// AppendInt appends v in the narrowest integer type that holds it: use it for
// bool, byte, short, int, long and enums.
func AppendInt(b []byte, tag uint8, v int64) []byte {
	switch {
	case v == 0:
		return AppendHead(b, tag, TypeZero)
	case v >= math.MinInt8 && v <= math.MaxInt8:
		return append(AppendHead(b, tag, TypeInt1), byte(v))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return binary.BigEndian.AppendUint16(AppendHead(b, tag, TypeInt2), uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(AppendHead(b, tag, TypeInt4), uint32(v))
	}
	return binary.BigEndian.AppendUint64(AppendHead(b, tag, TypeInt8), uint64(v))
}

// AppendBool appends v as the integer 1 or 0.
func AppendBool(b []byte, tag uint8, v bool) []byte {
	if v {
		return AppendInt(b, tag, 1)
	}
	return AppendInt(b, tag, 0)
}

// AppendFloat appends v as FLOAT; floats are never narrowed, not even 0.
func AppendFloat(b []byte, tag uint8, v float32) []byte {
	return binary.BigEndian.AppendUint32(AppendHead(b, tag, TypeFloat), math.Float32bits(v))
}

// AppendDouble appends v as DOUBLE.
func AppendDouble(b []byte, tag uint8, v float64) []byte {
	return binary.BigEndian.AppendUint64(AppendHead(b, tag, TypeDouble), math.Float64bits(v))
}

// AppendString appends s as STRING1 when it is at most 255 bytes long, else STRING4.
func AppendString(b []byte, tag uint8, s string) []byte {
	if len(s) <= math.MaxUint8 {
		b = append(AppendHead(b, tag, TypeString1), byte(len(s)))
	} else {
		b = binary.BigEndian.AppendUint32(AppendHead(b, tag, TypeString4), uint32(len(s)))
	}
	return append(b, s...)
}

// AppendBytes appends p as a vector<byte> (SIMPLE_LIST).
func AppendBytes(b []byte, tag uint8, p []byte) []byte {
	b = AppendHead(AppendHead(b, tag, TypeSimpleList), 0, TypeInt1)
	return append(AppendInt(b, 0, int64(len(p))), p...)
}

// AppendMapHead starts a map of n pairs; append each key at tag 0 and its value at tag 1.
func AppendMapHead(b []byte, tag uint8, n int) []byte {
	return AppendInt(AppendHead(b, tag, TypeMap), 0, int64(n))
}

// AppendListHead starts a list of n elements; append each at tag 0.
func AppendListHead(b []byte, tag uint8, n int) []byte {
	return AppendInt(AppendHead(b, tag, TypeList), 0, int64(n))
}

// AppendStructBegin starts a nested struct at tag; close it with AppendStructEnd.
func AppendStructBegin(b []byte, tag uint8) []byte { return AppendHead(b, tag, TypeStructBegin) }

// AppendStructEnd closes the struct opened last.
func AppendStructEnd(b []byte) []byte { return AppendHead(b, 0, TypeStructEnd) }

// AppendStringMap appends a map<string,string>, keys sorted so equal maps give equal bytes.
func AppendStringMap(b []byte, tag uint8, m map[string]string) []byte {
	return appendMap(b, tag, m, AppendString)
}

// appendMap appends m, keys sorted in a stack array so small maps do not allocate.
func appendMap[V any](b []byte, tag uint8, m map[string]V, value func([]byte, uint8, V) []byte) []byte {
	var stack [16]string
	keys := slices.AppendSeq(stack[:0], maps.Keys(m))
	slices.Sort(keys)
	b = AppendMapHead(b, tag, len(m))
	for _, k := range keys {
		b = value(AppendString(b, 0, k), 1, m[k])
	}
	return b
}

// head consumes the head at d.off; errTag is the enclosing value's tag, for errors.
func (d *Decoder) head(errTag int) (tag uint8, typ byte, err error) {
	b, off := d.buf, d.off
	switch {
	case off >= len(b):
		return 0, 0, decodeErr(off, errTag, "head: input ends")
	case b[off] >= 0xF0 && off+1 >= len(b):
		return 0, 0, decodeErr(off, errTag, "head: input ends before the tag byte")
	}
	if tag, typ = b[off]>>4, b[off]&0x0F; tag == 15 {
		tag, off = b[off+1], off+1
	}
	if typ > TypeSimpleList {
		return 0, 0, decodeErr(d.off, int(tag), "unknown type code %d", typ)
	}
	d.off = off + 1
	return tag, typ, nil
}

// take consumes n bytes, which alias the input; kind and what name n in errors.
func (d *Decoder) take(tag int, n uint64, kind, what string) ([]byte, error) {
	if left := len(d.buf) - d.off; n > uint64(left) {
		return nil, decodeErr(d.off, tag, "%s %s %d exceeds %d bytes left", kind, what, n, left)
	}
	d.off += int(n)
	return d.buf[d.off-int(n) : d.off : d.off], nil
}

// integer consumes the payload of a number of type typ, INT1 to DOUBLE or
// ZERO, sign-extended (a FLOAT or DOUBLE gives its bits).
func (d *Decoder) integer(tag int, typ byte) (int64, error) {
	p, err := d.take(tag, uint64(numberSize[typ]), typeNames[typ], "size")
	var u uint64
	for _, c := range p {
		u = u<<8 | uint64(c)
	}
	shift := 64 - 8*len(p) // sign-extend (ZERO: 64, and u is 0)
	return int64(u<<shift) >> shift, err
}

// count consumes the element count of a map, list or SIMPLE_LIST, an int at
// tag 0, checking that the bytes left hold per bytes for each element.
func (d *Decoder) count(tag int, per uint64, what string) (int, error) {
	start := d.off
	ctag, ctyp, err := d.head(tag)
	if err == nil && (ctag != 0 || ctyp > TypeInt4 && ctyp != TypeZero) {
		err = decodeErr(start, tag, "%s count: want an int at tag 0, found %s at tag %d", what, typeNames[ctyp], ctag)
	}
	var n int64
	if err == nil {
		n, err = d.integer(tag, ctyp)
	}
	switch left := uint64(len(d.buf) - d.off); {
	case err != nil:
		return 0, err
	case n < 0:
		return 0, decodeErr(start, tag, "negative %s count %d", what, n)
	case uint64(n)*per > left:
		return 0, decodeErr(start, tag, "%s count %d needs at least %d bytes, %d left", what, n, uint64(n)*per, left)
	}
	return int(n), nil
}

// skip consumes the payload of a value of type typ.
func (d *Decoder) skip(tag int, typ byte) (err error) {
	switch typ {
	case TypeInt1, TypeInt2, TypeInt4, TypeInt8, TypeFloat, TypeDouble, TypeZero:
		_, err = d.integer(tag, typ)
		return err
	case TypeString1, TypeString4:
		_, err = d.str(tag, typ)
		return err
	case TypeSimpleList:
		_, err = d.simpleList(tag)
		return err
	case TypeStructEnd:
		return nil
	case TypeMap, TypeList, TypeStructBegin:
	default:
		return decodeErr(d.off, tag, "unknown type code %d", typ)
	}
	if d.depth >= MaxDepth {
		return decodeErr(d.off, tag, "nesting deeper than %d", MaxDepth)
	}
	n := -1 // a struct: fields up to its STRUCT_END
	if typ == TypeList {
		n, err = d.count(tag, 1, "list")
	} else if typ == TypeMap {
		n, err = d.count(tag, 2, "map")
		n *= 2 // a pair is two values
	}
	d.depth++
	defer func() { d.depth-- }()
	for i := 0; i != n && err == nil; i++ {
		if n < 0 && d.off >= len(d.buf) {
			return decodeErr(d.off, tag, "struct has no STRUCT_END")
		}
		etag, etyp, err := d.head(tag)
		if err != nil || n < 0 && etyp == TypeStructEnd {
			return err
		}
		if err = d.skip(int(etag), etyp); err != nil {
			return err
		}
	}
	return err
}

// str consumes the payload of a STRING1 or STRING4; the result aliases the input.
func (d *Decoder) str(tag int, typ byte) ([]byte, error) {
	p, err := d.take(tag, uint64(1+3*(typ-TypeString1)), typeNames[typ], "length field")
	if err != nil {
		return nil, err
	}
	n := uint64(p[0])
	if typ == TypeString4 {
		n = uint64(binary.BigEndian.Uint32(p))
	}
	return d.take(tag, n, "string", "length")
}

// simpleList consumes the payload of a SIMPLE_LIST; the result aliases the input.
func (d *Decoder) simpleList(tag int) ([]byte, error) {
	start := d.off
	itag, ityp, err := d.head(tag)
	if err == nil && (itag != 0 || ityp != TypeInt1) {
		err = decodeErr(start, tag, "SIMPLE_LIST element head: want INT1 at tag 0, found %s at tag %d", typeNames[ityp], itag)
	}
	n := 0
	if err == nil {
		n, err = d.count(tag, 1, "SIMPLE_LIST")
	}
	if err != nil {
		return nil, err
	}
	return d.take(tag, uint64(n), "SIMPLE_LIST", "length")
}

// DecodeError reports malformed Tars data: what was wrong, the tag of the
// value being read and the byte offset in the input; -1 when unknown.
type DecodeError struct {
	Offset int
	Tag    int
	What   string
}

func (e *DecodeError) Error() string {
	s := "tars: decode"
	if e.Tag >= 0 {
		s += fmt.Sprintf(" tag %d", e.Tag)
	}
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	return s + ": " + e.What
}

func decodeErr(off, tag int, format string, args ...any) *DecodeError {
	return &DecodeError{Offset: off, Tag: tag, What: fmt.Sprintf(format, args...)}
}

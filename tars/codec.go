package tars

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// The Tars wire format: every value is a head, then the type's payload. The
// head is tag<<4 | type for a tag below 15, else the two bytes 0xF0 | type,
// tag. Numbers are big-endian; integers take the narrowest signed type that
// holds them, 0 a bare ZERO head. A struct is its fields in ascending tag
// order; readers skip fields they do not know, so newer peers may add some.
// Encoders append to a caller-owned slice; decoders check every length
// against the bytes left before using it and never panic.

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

// MaxDepth bounds the nesting of structs, maps and lists a decoder follows,
// so hostile input cannot exhaust the stack.
const MaxDepth = 100

// DefaultMaxLen is the most elements a Decoder accepts in one list or map
// unless its MaxLen says otherwise: a decoded element can take far more
// memory than its smallest encoding (an empty struct is 2 bytes on the wire).
const DefaultMaxLen = 1 << 16

// preSize bounds the capacity decoders give a map or slice from a count read
// off the wire; beyond it, they grow as elements really decode.
const preSize = 16

var typeNames = [...]string{"INT1", "INT2", "INT4", "INT8", "FLOAT", "DOUBLE", "STRING1", "STRING4",
	"MAP", "LIST", "STRUCT_BEGIN", "STRUCT_END", "ZERO", "SIMPLE_LIST"}

func typeName(typ byte) string {
	if int(typ) < len(typeNames) {
		return typeNames[typ]
	}
	return "unknown type"
}

// AppendHead appends the head of a value of type typ at tag.
func AppendHead(b []byte, tag uint8, typ byte) []byte {
	if tag < 15 {
		return append(b, tag<<4|typ)
	}
	return append(b, 0xF0|typ, tag)
}

// AppendInt appends v in the narrowest integer type that holds it. Use it for
// bool, byte, short, int, long and enums; unsigned values are widened by the
// caller (uint8 as int16, uint16 as int32, uint32 as int64).
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
	default:
		return binary.BigEndian.AppendUint64(AppendHead(b, tag, TypeInt8), uint64(v))
	}
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

// AppendString appends s as STRING1 when it is at most 255 bytes long and as
// STRING4 otherwise.
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
	b = AppendHead(b, tag, TypeSimpleList)
	b = AppendHead(b, 0, TypeInt1)
	b = AppendInt(b, 0, int64(len(p)))
	return append(b, p...)
}

// AppendMapHead starts a map of n pairs; append each key at tag 0 and its
// value at tag 1.
func AppendMapHead(b []byte, tag uint8, n int) []byte {
	return AppendInt(AppendHead(b, tag, TypeMap), 0, int64(n))
}

// AppendListHead starts a list of n elements; append each at tag 0.
func AppendListHead(b []byte, tag uint8, n int) []byte {
	return AppendInt(AppendHead(b, tag, TypeList), 0, int64(n))
}

// AppendStructBegin starts a nested struct at tag; close it with AppendStructEnd.
func AppendStructBegin(b []byte, tag uint8) []byte {
	return AppendHead(b, tag, TypeStructBegin)
}

// AppendStructEnd closes the struct opened last.
func AppendStructEnd(b []byte) []byte {
	return AppendHead(b, 0, TypeStructEnd)
}

// AppendStringMap appends a map<string,string> with its keys in sorted order,
// so equal maps give equal bytes.
func AppendStringMap(b []byte, tag uint8, m map[string]string) []byte {
	return appendMap(b, tag, m, AppendString)
}

// appendMap appends m, keys sorted. Small maps sort in a stack array, keeping
// encoding free of allocations.
func appendMap[V any](b []byte, tag uint8, m map[string]V, value func([]byte, uint8, V) []byte) []byte {
	var stack [16]string
	keys := stack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = AppendMapHead(b, tag, len(m))
	for _, k := range keys {
		b = value(AppendString(b, 0, k), 1, m[k])
	}
	return b
}

// head parses the head at b[off:] and returns the offset after it, or -1
// when it is malformed (headErr says why). Small enough to inline.
func head(b []byte, off int) (tag uint8, typ byte, next int) {
	if off >= len(b) {
		return 0, 0, -1
	}
	tag, typ, next = b[off]>>4, b[off]&0x0F, off+1
	if tag == 15 {
		if next >= len(b) {
			return 0, 0, -1
		}
		tag, next = b[next], next+1
	}
	if typ > TypeSimpleList {
		return 0, 0, -1
	}
	return tag, typ, next
}

// headErr reports why the head at b[off:] is malformed; errTag is that of
// the enclosing value.
func headErr(b []byte, off, errTag int) error {
	switch {
	case off >= len(b):
		return decodeErr(off, errTag, "head: input ends")
	case b[off] >= 0xF0 && off+1 >= len(b):
		return decodeErr(off, errTag, "head: input ends before the tag byte")
	}
	tag := int(b[off] >> 4)
	if tag == 15 {
		tag = int(b[off+1])
	}
	return decodeErr(off, tag, "unknown type code %d", b[off]&0x0F)
}

func need(b []byte, off, tag int, n uint64, what string) error {
	if n > uint64(len(b)-off) {
		return shortErr(b, off, tag, n, what)
	}
	return nil
}

func shortErr(b []byte, off, tag int, n uint64, what string) error {
	return decodeErr(off, tag, "%s %d exceeds %d bytes left", what, n, len(b)-off)
}

// intAt reads the payload of an integer of type typ at b[off:].
func intAt(b []byte, off, tag int, typ byte) (v int64, next int, err error) {
	if typ == TypeZero {
		return 0, off, nil
	}
	if typ > TypeInt8 {
		return 0, off, decodeErr(off, tag, "want an integer, found %s", typeName(typ))
	}
	size := 1 << typ // INT1..INT8 are 1, 2, 4, 8 bytes
	if size > len(b)-off {
		return 0, off, shortErr(b, off, tag, uint64(size), typeName(typ)+" size")
	}
	p := b[off : off+size]
	switch typ {
	case TypeInt1:
		v = int64(int8(p[0]))
	case TypeInt2:
		v = int64(int16(binary.BigEndian.Uint16(p)))
	case TypeInt4:
		v = int64(int32(binary.BigEndian.Uint32(p)))
	default:
		v = int64(binary.BigEndian.Uint64(p))
	}
	return v, off + size, nil
}

// countAt reads the element count of a map, list or SIMPLE_LIST at b[off:]:
// an int at tag 0, checked against the bytes left; each element needs at
// least per bytes.
func countAt(b []byte, off, tag int, per uint64, what string) (n int, next int, err error) {
	ctag, ctyp, next := head(b, off)
	if next < 0 {
		return 0, off, headErr(b, off, tag)
	}
	if ctag != 0 || (ctyp > TypeInt4 && ctyp != TypeZero) {
		return 0, off, decodeErr(off, tag, "%s count: want an int at tag 0, found %s at tag %d",
			what, typeName(ctyp), ctag)
	}
	v, next, err := intAt(b, next, tag, ctyp)
	if err != nil {
		return 0, off, err
	}
	if v < 0 {
		return 0, off, decodeErr(off, tag, "negative %s count %d", what, v)
	}
	if left := uint64(len(b) - next); uint64(v)*per > left {
		return 0, off, decodeErr(off, tag, "%s count %d needs at least %d bytes, %d left",
			what, v, uint64(v)*per, left)
	}
	return int(v), next, nil
}

// skip returns the offset after the payload of a value of type typ at b[off:].
func skip(b []byte, off, tag int, typ byte, depth int) (next int, err error) {
	switch typ {
	case TypeInt1, TypeInt2, TypeInt4, TypeInt8:
		_, next, err = intAt(b, off, tag, typ)
		return next, err
	case TypeFloat:
		return off + 4, need(b, off, tag, 4, "FLOAT size")
	case TypeDouble:
		return off + 8, need(b, off, tag, 8, "DOUBLE size")
	case TypeString1, TypeString4:
		_, next, err = stringAt(b, off, tag, typ)
		return next, err
	case TypeZero, TypeStructEnd:
		return off, nil
	case TypeSimpleList:
		_, next, err = simpleListAt(b, off, tag)
		return next, err
	case TypeMap, TypeList, TypeStructBegin:
	default:
		return off, decodeErr(off, tag, "unknown type code %d", typ)
	}
	if depth >= MaxDepth {
		return off, decodeErr(off, tag, "nesting deeper than %d", MaxDepth)
	}
	n, next := -1, off // a struct: fields up to its STRUCT_END
	if typ != TypeStructBegin {
		per, what := uint64(1), "list"
		if typ == TypeMap {
			per, what = 2, "map"
		}
		if n, next, err = countAt(b, off, tag, per, what); err != nil {
			return off, err
		}
		n *= int(per) // a map's pairs are two values each
	}
	for i := 0; i != n; i++ {
		etag, etyp, after := head(b, next)
		switch {
		case after < 0 && n < 0 && next >= len(b):
			return off, decodeErr(next, tag, "struct has no STRUCT_END")
		case after < 0:
			return off, headErr(b, next, tag)
		case n < 0 && etyp == TypeStructEnd:
			return after, nil
		}
		if next, err = skip(b, after, int(etag), etyp, depth+1); err != nil {
			return off, err
		}
	}
	return next, nil
}

// stringAt reads the payload of a STRING1 or STRING4 at b[off:]; the result
// aliases b.
func stringAt(b []byte, off, tag int, typ byte) (s []byte, next int, err error) {
	var n uint64
	switch {
	case typ == TypeString1 && off < len(b):
		n, next = uint64(b[off]), off+1
	case typ == TypeString4 && len(b)-off >= 4:
		n, next = uint64(binary.BigEndian.Uint32(b[off:])), off+4
	default:
		return nil, off, shortErr(b, off, tag, 1+3*uint64(typ-TypeString1), typeName(typ)+" length field")
	}
	if err := need(b, next, tag, n, "string length"); err != nil {
		return nil, off, err
	}
	end := next + int(n)
	return b[next:end:end], end, nil
}

// simpleListAt reads the payload of a SIMPLE_LIST at b[off:]; the result
// aliases b.
func simpleListAt(b []byte, off, tag int) (p []byte, next int, err error) {
	itag, ityp, next := head(b, off)
	if next < 0 {
		return nil, off, headErr(b, off, tag)
	}
	if itag != 0 || ityp != TypeInt1 {
		return nil, off, decodeErr(off, tag, "SIMPLE_LIST element head: want INT1 at tag 0, found %s at tag %d",
			typeName(ityp), itag)
	}
	n, next, err := countAt(b, next, tag, 1, "SIMPLE_LIST")
	if err != nil {
		return nil, off, err
	}
	end := next + n
	return b[next:end:end], end, nil
}

// DecodeError reports malformed Tars data: what was wrong, the tag of the
// value being read and the byte offset in the input; either is -1 when it
// does not apply.
type DecodeError struct {
	Offset int
	Tag    int
	What   string
}

func (e *DecodeError) Error() string {
	b := []byte("tars: decode")
	if e.Tag >= 0 {
		b = fmt.Appendf(b, " tag %d", e.Tag)
	}
	if e.Offset >= 0 {
		b = fmt.Appendf(b, " at offset %d", e.Offset)
	}
	return string(fmt.Appendf(b, ": %s", e.What))
}

func decodeErr(off, tag int, format string, args ...any) *DecodeError {
	return &DecodeError{Offset: off, Tag: tag, What: fmt.Sprintf(format, args...)}
}

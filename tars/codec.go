// Package tars implements the Tars RPC wire format: the tagged value codec,
// request and response packets, their framing on a stream, and the TUP
// argument map.
//
// Every value is a head (tag and type) followed by the type's payload:
//
//	tag < 15:  one byte  tag<<4 | type
//	tag >= 15: two bytes 0xF0 | type, tag
//
// Numbers are big-endian. Integers are written in the narrowest signed type
// that holds them and 0 is written as a bare ZERO head. A struct is its
// fields in ascending tag order; readers skip fields they do not know, so
// newer peers may add fields.
//
// Encoders append to a caller-owned slice and never allocate beyond growing
// it. Decoders check every length against the bytes left before using it
// and never panic.
package tars

import (
	"encoding/binary"
	"math"
	"slices"
)

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
// unless its MaxLen says otherwise. A decoded element can take far more
// memory than its smallest encoding (an empty struct is 2 bytes on the wire),
// so counts are bounded as well as checked against the bytes present.
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

// ---- Encoding ----

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
	b = AppendMapHead(b, tag, len(m))
	var stack [16]string
	for _, k := range sortedKeys(stack[:0], m) {
		b = AppendString(b, 0, k)
		b = AppendString(b, 1, m[k])
	}
	return b
}

// AppendBytesMap appends a map<string,vector<byte>> with its keys in sorted order.
func AppendBytesMap(b []byte, tag uint8, m map[string][]byte) []byte {
	b = AppendMapHead(b, tag, len(m))
	var stack [16]string
	for _, k := range sortedKeys(stack[:0], m) {
		b = AppendString(b, 0, k)
		b = AppendBytes(b, 1, m[k])
	}
	return b
}

// sortedKeys appends the keys of m to keys and sorts them. Small maps fit the
// caller's stack array, keeping encoding free of allocations.
func sortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ---- Consume-style primitives ----

// ConsumeHead parses the head at the start of b and returns its tag, its type
// and its length in bytes (1 or 2). On malformed input n is -1 and err says why.
func ConsumeHead(b []byte) (tag uint8, typ byte, n int, err error) {
	tag, typ, n = head(b, 0)
	if n < 0 {
		return 0, 0, -1, headErr(b, 0, -1)
	}
	return tag, typ, n, nil
}

// Skip returns the length of the value of type typ at the start of b (the
// bytes after its head), following nested values down to MaxDepth.
// On malformed input n is -1 and err says why.
func Skip(b []byte, typ byte) (n int, err error) {
	n, err = skip(b, 0, -1, typ, 0)
	if err != nil {
		return -1, err
	}
	return n, nil
}

// head parses the head at b[off:] and returns the offset after it, or -1
// when the head is malformed; headErr then says why. Small enough to inline.
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

// headErr reports why the head at b[off:] is malformed. errTag names the
// enclosing value.
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

// need checks that n bytes of what are left at b[off:].
func need(b []byte, off, tag int, n uint64, what string) error {
	if n > uint64(len(b)-off) {
		return shortErr(b, off, tag, n, what)
	}
	return nil
}

// shortErr reports that n bytes of what exceed those left at b[off:].
func shortErr(b []byte, off, tag int, n uint64, what string) error {
	return decodeErr(off, tag, "%s %d exceeds %d bytes left", what, n, len(b)-off)
}

// intAt reads the payload of an integer value of type typ at b[off:].
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
		return 0, off, decodeErr(off, tag, "%s count: want an int at tag 0, found %s at tag %d", what, typeName(ctyp), ctag)
	}
	v, next, err := intAt(b, next, tag, ctyp)
	if err != nil {
		return 0, off, err
	}
	if v < 0 {
		return 0, off, decodeErr(off, tag, "negative %s count %d", what, v)
	}
	if left := uint64(len(b) - next); uint64(v)*per > left {
		return 0, off, decodeErr(off, tag, "%s count %d needs at least %d bytes, %d left", what, v, uint64(v)*per, left)
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
	}
	if depth >= MaxDepth {
		return off, decodeErr(off, tag, "nesting deeper than %d", MaxDepth)
	}
	switch typ {
	case TypeMap, TypeList:
		per, what, values := uint64(1), "list", 1
		if typ == TypeMap {
			per, what, values = 2, "map", 2
		}
		n, next, err := countAt(b, off, tag, per, what)
		if err != nil {
			return off, err
		}
		for range n * values {
			etag, etyp, after := head(b, next)
			if after < 0 {
				return off, headErr(b, next, tag)
			}
			if next, err = skip(b, after, int(etag), etyp, depth+1); err != nil {
				return off, err
			}
		}
		return next, nil
	case TypeStructBegin:
		next := off
		for {
			if next >= len(b) {
				return off, decodeErr(next, tag, "struct has no STRUCT_END")
			}
			ftag, ftyp, after := head(b, next)
			if after < 0 {
				return off, headErr(b, next, tag)
			}
			if ftyp == TypeStructEnd {
				return after, nil
			}
			if next, err = skip(b, after, int(ftag), ftyp, depth+1); err != nil {
				return off, err
			}
		}
	}
	return off, decodeErr(off, tag, "unknown type code %d", typ)
}

// stringAt reads the payload of a STRING1 or STRING4 at b[off:]; the result
// aliases b.
func stringAt(b []byte, off, tag int, typ byte) (s []byte, next int, err error) {
	var n uint64
	if typ == TypeString1 {
		if err := need(b, off, tag, 1, "STRING1 length byte"); err != nil {
			return nil, off, err
		}
		n, next = uint64(b[off]), off+1
	} else {
		if err := need(b, off, tag, 4, "STRING4 length field"); err != nil {
			return nil, off, err
		}
		n, next = uint64(binary.BigEndian.Uint32(b[off:])), off+4
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
		return nil, off, decodeErr(off, tag, "SIMPLE_LIST element head: want INT1 at tag 0, found %s at tag %d", typeName(ityp), itag)
	}
	n, next, err := countAt(b, next, tag, 1, "SIMPLE_LIST")
	if err != nil {
		return nil, off, err
	}
	end := next + n
	return b[next:end:end], end, nil
}

// ---- Decoder ----

// Decoder reads the fields of one struct level, or of a packet body, in
// ascending tag order. Each Read method looks for its tag: smaller tags are
// skipped, an equal tag is read, and a larger tag or a STRUCT_END means the
// field is absent (that head stays for the next read). An absent required
// field is a *DecodeError; an absent optional field leaves *v unchanged, so
// callers preset defaults. The zero Decoder reads empty input.
//
// Skipping a field (reading a larger tag first) allocates nothing, so a
// reader can check a small field before it decodes a large one.
type Decoder struct {
	// MaxLen is the most elements ReadListLen, ReadMapLen, ReadStringMap
	// and ReadBytesMap accept; 0 means DefaultMaxLen. Set it for each list
	// or map from what the value may hold.
	MaxLen int

	buf   []byte
	off   int
	at    int // offset of the head of the field found last, for errors
	depth int // structs, maps and lists entered
}

// NewDecoder returns a Decoder reading b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Reset makes d read b from its start; MaxLen is kept.
func (d *Decoder) Reset(b []byte) { *d = Decoder{buf: b, MaxLen: d.MaxLen} }

// Offset returns the number of bytes consumed so far.
func (d *Decoder) Offset() int { return d.off }

// field consumes the head of field tag and returns its type; ok is false
// when the field is absent.
func (d *Decoder) field(tag uint8, required bool) (typ byte, ok bool, err error) {
	for d.off < len(d.buf) {
		ftag, ftyp, next := head(d.buf, d.off)
		if next < 0 {
			return 0, false, headErr(d.buf, d.off, int(tag))
		}
		if ftyp == TypeStructEnd || ftag > tag {
			break
		}
		if ftag == tag {
			d.at, d.off = d.off, next
			return ftyp, true, nil
		}
		if d.off, err = skip(d.buf, next, int(ftag), ftyp, d.depth); err != nil {
			return 0, false, err
		}
	}
	if required {
		return 0, false, decodeErr(d.off, int(tag), "required field missing")
	}
	return 0, false, nil
}

// wrongType reports a field whose stored type cannot be read as want.
func (d *Decoder) wrongType(tag uint8, typ byte, want string) error {
	return decodeErr(d.at, int(tag), "%s cannot be read as %s", typeName(typ), want)
}

// readInt reads an integer field stored in at most the type widest.
func (d *Decoder) readInt(tag uint8, required bool, widest byte, want string) (v int64, ok bool, err error) {
	typ, ok, err := d.field(tag, required)
	if !ok {
		return 0, false, err
	}
	if typ != TypeZero && typ > widest {
		return 0, false, d.wrongType(tag, typ, want)
	}
	v, d.off, err = intAt(d.buf, d.off, int(tag), typ)
	return v, err == nil, err
}

// readUint reads an unsigned field, stored widened to the next signed type.
func (d *Decoder) readUint(tag uint8, required bool, widest byte, want string, limit int64) (v int64, ok bool, err error) {
	v, ok, err = d.readInt(tag, required, widest, want)
	if ok && (v < 0 || v > limit) {
		return 0, false, decodeErr(d.at, int(tag), "value %d out of range for %s", v, want)
	}
	return v, ok, err
}

// ReadBool reads a bool (ZERO or INT1; any non-zero value is true).
func (d *Decoder) ReadBool(v *bool, tag uint8, required bool) error {
	n, ok, err := d.readInt(tag, required, TypeInt1, "bool")
	if ok {
		*v = n != 0
	}
	return err
}

// ReadInt8 reads a byte (ZERO or INT1).
func (d *Decoder) ReadInt8(v *int8, tag uint8, required bool) error {
	n, ok, err := d.readInt(tag, required, TypeInt1, "int8")
	if ok {
		*v = int8(n)
	}
	return err
}

// ReadInt16 reads a short (ZERO, INT1 or INT2).
func (d *Decoder) ReadInt16(v *int16, tag uint8, required bool) error {
	n, ok, err := d.readInt(tag, required, TypeInt2, "int16")
	if ok {
		*v = int16(n)
	}
	return err
}

// ReadInt32 reads an int or enum (ZERO, INT1, INT2 or INT4).
func (d *Decoder) ReadInt32(v *int32, tag uint8, required bool) error {
	n, ok, err := d.readInt(tag, required, TypeInt4, "int32")
	if ok {
		*v = int32(n)
	}
	return err
}

// ReadInt64 reads a long (ZERO or INT1 to INT8).
func (d *Decoder) ReadInt64(v *int64, tag uint8, required bool) error {
	n, ok, err := d.readInt(tag, required, TypeInt8, "int64")
	if ok {
		*v = n
	}
	return err
}

// ReadUint8 reads an unsigned byte, stored as a short.
func (d *Decoder) ReadUint8(v *uint8, tag uint8, required bool) error {
	n, ok, err := d.readUint(tag, required, TypeInt2, "uint8", math.MaxUint8)
	if ok {
		*v = uint8(n)
	}
	return err
}

// ReadUint16 reads an unsigned short, stored as an int.
func (d *Decoder) ReadUint16(v *uint16, tag uint8, required bool) error {
	n, ok, err := d.readUint(tag, required, TypeInt4, "uint16", math.MaxUint16)
	if ok {
		*v = uint16(n)
	}
	return err
}

// ReadUint32 reads an unsigned int, stored as a long.
func (d *Decoder) ReadUint32(v *uint32, tag uint8, required bool) error {
	n, ok, err := d.readUint(tag, required, TypeInt8, "uint32", math.MaxUint32)
	if ok {
		*v = uint32(n)
	}
	return err
}

// ReadFloat reads a float (ZERO or FLOAT).
func (d *Decoder) ReadFloat(v *float32, tag uint8, required bool) error {
	typ, ok, err := d.field(tag, required)
	if !ok {
		return err
	}
	switch typ {
	case TypeZero:
		*v = 0
		return nil
	case TypeFloat:
		if err := need(d.buf, d.off, int(tag), 4, "FLOAT size"); err != nil {
			return err
		}
		*v = math.Float32frombits(binary.BigEndian.Uint32(d.buf[d.off:]))
		d.off += 4
		return nil
	}
	return d.wrongType(tag, typ, "float32")
}

// ReadDouble reads a double (ZERO, FLOAT or DOUBLE).
func (d *Decoder) ReadDouble(v *float64, tag uint8, required bool) error {
	typ, ok, err := d.field(tag, required)
	if !ok {
		return err
	}
	switch typ {
	case TypeZero:
		*v = 0
		return nil
	case TypeFloat:
		if err := need(d.buf, d.off, int(tag), 4, "FLOAT size"); err != nil {
			return err
		}
		*v = float64(math.Float32frombits(binary.BigEndian.Uint32(d.buf[d.off:])))
		d.off += 4
		return nil
	case TypeDouble:
		if err := need(d.buf, d.off, int(tag), 8, "DOUBLE size"); err != nil {
			return err
		}
		*v = math.Float64frombits(binary.BigEndian.Uint64(d.buf[d.off:]))
		d.off += 8
		return nil
	}
	return d.wrongType(tag, typ, "float64")
}

// ReadString reads a string (STRING1 or STRING4).
func (d *Decoder) ReadString(v *string, tag uint8, required bool) error {
	s, ok, err := d.stringField(tag, required)
	if ok {
		*v = string(s)
	}
	return err
}

// readName reads a string that recurs from message to message, such as a
// servant or function name, through the shared name cache.
func (d *Decoder) readName(v *string, tag uint8, required bool) error {
	s, ok, err := d.stringField(tag, required)
	if ok {
		*v = names.get(s)
	}
	return err
}

// stringField reads the bytes of a string field; they alias the input.
func (d *Decoder) stringField(tag uint8, required bool) (s []byte, ok bool, err error) {
	typ, ok, err := d.field(tag, required)
	if !ok {
		return nil, false, err
	}
	if typ != TypeString1 && typ != TypeString4 {
		return nil, false, d.wrongType(tag, typ, "string")
	}
	s, d.off, err = stringAt(d.buf, d.off, int(tag), typ)
	return s, err == nil, err
}

// ReadBytes reads a vector<byte>: a SIMPLE_LIST, whose bytes *v aliases
// (no copy), or a LIST of INT1, which is copied.
func (d *Decoder) ReadBytes(v *[]byte, tag uint8, required bool) error {
	typ, ok, err := d.field(tag, required)
	if !ok {
		return err
	}
	switch typ {
	case TypeSimpleList:
		p, next, err := simpleListAt(d.buf, d.off, int(tag))
		if err != nil {
			return err
		}
		*v, d.off = p, next
		return nil
	case TypeList:
		n, next, err := countAt(d.buf, d.off, int(tag), 1, "list")
		if err != nil {
			return err
		}
		p := make([]byte, n)
		for i := range p {
			etag, etyp, after := head(d.buf, next)
			if after < 0 {
				return headErr(d.buf, next, int(tag))
			}
			if etag != 0 || (etyp != TypeInt1 && etyp != TypeZero) {
				return decodeErr(next, int(tag), "vector<byte> element %d: want INT1 at tag 0, found %s at tag %d", i, typeName(etyp), etag)
			}
			e, after, err := intAt(d.buf, after, int(tag), etyp)
			if err != nil {
				return err
			}
			p[i], next = byte(e), after
		}
		*v, d.off = p, next
		return nil
	}
	return d.wrongType(tag, typ, "vector<byte>")
}

// ReadListLen reads the head and count of a LIST; then read its n elements
// at tag 0 (structs with ReadStructBegin(0, true) and ReadStructEnd).
// n is at most MaxLen, and the bytes left hold n elements of the first
// one's kind at their smallest (1 byte for numbers, 2 for anything else);
// still, grow what holds them as they decode rather than sizing it by n.
func (d *Decoder) ReadListLen(tag uint8, required bool) (n int, ok bool, err error) {
	return d.container(tag, required, TypeList, 0, "list")
}

// ReadMapLen reads the head and count of a MAP; then read its n pairs, each
// key at tag 0 and value at tag 1. n is bounded as in ReadListLen.
func (d *Decoder) ReadMapLen(tag uint8, required bool) (n int, ok bool, err error) {
	return d.container(tag, required, TypeMap, 0, "map")
}

// container reads the head and count of a list or map whose elements need
// at least per bytes each (0: judge by the first element).
func (d *Decoder) container(tag uint8, required bool, want byte, per uint64, what string) (n int, ok bool, err error) {
	typ, ok, err := d.field(tag, required)
	if !ok {
		return 0, false, err
	}
	if typ != want {
		return 0, false, d.wrongType(tag, typ, what)
	}
	judge := per == 0
	if judge {
		per = 1 // a number may be a bare ZERO head
		if want == TypeMap {
			per = 2 // and so may its value
		}
	}
	n, next, err := countAt(d.buf, d.off, int(tag), per, what)
	if err == nil && judge && n > 0 {
		if t := d.buf[next] & 0x0F; t > TypeDouble && t != TypeZero {
			// Not numbers: each element takes 2 bytes at least.
			n, next, err = countAt(d.buf, d.off, int(tag), per+1, what)
		}
	}
	if err != nil {
		return 0, false, err
	}
	if limit := d.maxLen(); n > limit {
		return 0, false, decodeErr(d.at, int(tag), "%s of %d elements exceeds the limit of %d", what, n, limit)
	}
	d.off = next
	return n, true, nil
}

func (d *Decoder) maxLen() int {
	if d.MaxLen > 0 {
		return d.MaxLen
	}
	return DefaultMaxLen
}

// ReadStringMap reads a map<string,string>. An empty map reads as nil.
func (d *Decoder) ReadStringMap(v *map[string]string, tag uint8, required bool) error {
	return d.readStringMap(v, tag, required, math.MaxInt)
}

// readStringMap reads a map<string,string> whose keys and values take at
// most limit bytes in all.
func (d *Decoder) readStringMap(v *map[string]string, tag uint8, required bool, limit int) error {
	n, ok, err := d.container(tag, required, TypeMap, 4, "map") // two STRING1 heads and lengths
	if !ok {
		return err
	}
	var m map[string]string
	if n > 0 {
		m = make(map[string]string, min(n, preSize))
	}
	size := 0
	for range n {
		k, _, err := d.stringField(0, true)
		if err != nil {
			return err
		}
		e, _, err := d.stringField(1, true)
		if err != nil {
			return err
		}
		if size += len(k) + len(e); size > limit {
			return decodeErr(d.at, int(tag), "map keys and values exceed %d bytes", limit)
		}
		m[string(k)] = string(e)
	}
	*v = m
	return nil
}

// ReadBytesMap reads a map<string,vector<byte>>; the values alias the input.
// An empty map reads as nil.
func (d *Decoder) ReadBytesMap(v *map[string][]byte, tag uint8, required bool) error {
	n, ok, err := d.container(tag, required, TypeMap, 4, "map") // a STRING1 and a LIST or SIMPLE_LIST
	if !ok {
		return err
	}
	var m map[string][]byte
	if n > 0 {
		m = make(map[string][]byte, min(n, preSize))
	}
	for range n {
		var k string
		var e []byte
		if err := d.ReadString(&k, 0, true); err != nil {
			return err
		}
		if err := d.ReadBytes(&e, 1, true); err != nil {
			return err
		}
		m[k] = e
	}
	*v = m
	return nil
}

// ReadStructBegin enters the nested struct at tag; read its fields, then
// call ReadStructEnd.
func (d *Decoder) ReadStructBegin(tag uint8, required bool) (ok bool, err error) {
	typ, ok, err := d.field(tag, required)
	if !ok {
		return false, err
	}
	if typ != TypeStructBegin {
		return false, d.wrongType(tag, typ, "struct")
	}
	if d.depth >= MaxDepth {
		return false, decodeErr(d.at, int(tag), "nesting deeper than %d", MaxDepth)
	}
	d.depth++
	return true, nil
}

// ReadStructEnd skips the fields of the current struct that were not read
// (newer peers add fields) and consumes its STRUCT_END.
func (d *Decoder) ReadStructEnd() error {
	for {
		if d.off >= len(d.buf) {
			return decodeErr(d.off, -1, "struct has no STRUCT_END")
		}
		ftag, ftyp, next := head(d.buf, d.off)
		if next < 0 {
			return headErr(d.buf, d.off, -1)
		}
		if ftyp == TypeStructEnd {
			d.off = next
			if d.depth > 0 {
				d.depth--
			}
			return nil
		}
		var err error
		if d.off, err = skip(d.buf, next, int(ftag), ftyp, d.depth); err != nil {
			return err
		}
	}
}

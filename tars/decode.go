package tars

import (
	"cmp"
	"math"
)

// Decoder reads the fields of a struct or packet body in ascending tag
// order. Each Read method skips smaller tags and reads its own; a larger tag
// or a STRUCT_END means the field is absent: an error if required, else *v
// is left as it was, so callers preset defaults. The zero Decoder reads empty input.
type Decoder struct {
	// MaxLen is the most elements ReadListLen, ReadMapLen and ReadStringMap
	// accept; 0 means DefaultMaxLen. Set it for each list or map.
	MaxLen int

	buf   []byte
	off   int
	at    int // offset of the head of the field found last, for errors
	depth int // structs, maps and lists entered
}

// NewDecoder returns a Decoder reading b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Offset returns the number of bytes consumed so far.
func (d *Decoder) Offset() int { return d.off }

// field consumes the head of field tag, whose type must be in accept (a bit
// per type code), else it cannot be read as want; ok is false when it is absent.
func (d *Decoder) field(tag uint8, required bool, want string, accept uint16) (typ byte, ok bool, err error) {
	for d.off < len(d.buf) {
		at := d.off
		ftag, ftyp, err := d.head(int(tag))
		if err != nil {
			return 0, false, err
		}
		if ftyp == TypeStructEnd || ftag > tag {
			d.off = at // not this field: leave it for the next read
			break
		}
		if ftag == tag {
			if accept&(1<<ftyp) == 0 {
				return 0, false, decodeErr(at, int(tag), "%s cannot be read as %s", typeNames[ftyp], want)
			}
			d.at = at
			return ftyp, true, nil
		}
		if err := d.skip(int(ftag), ftyp); err != nil {
			return 0, false, err
		}
	}
	if required {
		return 0, false, decodeErr(d.off, int(tag), "required field missing")
	}
	return 0, false, nil
}

// readNumber reads a number stored as ZERO or as a type in accept. Unsigned
// types are stored widened to the next signed one, so a value may be out of range.
func readNumber[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | float32 | float64](
	d *Decoder, v *T, tag uint8, required bool, accept uint16, want string) error {
	typ, ok, err := d.field(tag, required, want, accept|1<<TypeZero)
	if !ok {
		return err
	}
	n, err := d.integer(int(tag), typ) // a float's bits
	switch {
	case err != nil:
	case typ == TypeFloat:
		*v = T(math.Float32frombits(uint32(n)))
	case typ == TypeDouble:
		*v = T(math.Float64frombits(uint64(n)))
	case int64(T(n)) != n:
		err = decodeErr(d.at, int(tag), "value %d out of range for %s", n, want)
	default:
		*v = T(n)
	}
	return err
}

// upTo is the set of integer types up to typ.
func upTo(typ byte) uint16 { return 2<<typ - 1 }

// ReadBool reads a bool (ZERO or INT1; any non-zero value is true).
func (d *Decoder) ReadBool(v *bool, tag uint8, required bool) error {
	var n int8
	if *v {
		n = 1 // kept when the field is absent
	}
	err := readNumber(d, &n, tag, required, upTo(TypeInt1), "bool")
	*v = n != 0
	return err
}

// ReadInt8 reads a byte (ZERO or INT1).
func (d *Decoder) ReadInt8(v *int8, tag uint8, required bool) error {
	return readNumber(d, v, tag, required, upTo(TypeInt1), "int8")
}

// ReadInt16 reads a short (ZERO, INT1 or INT2).
func (d *Decoder) ReadInt16(v *int16, tag uint8, required bool) error {
	return readNumber(d, v, tag, required, upTo(TypeInt2), "int16")
}

// ReadInt32 reads an int or enum (ZERO, INT1, INT2 or INT4).
func (d *Decoder) ReadInt32(v *int32, tag uint8, required bool) error {
	return readNumber(d, v, tag, required, upTo(TypeInt4), "int32")
}

// ReadInt64 reads a long (ZERO or INT1 to INT8).
func (d *Decoder) ReadInt64(v *int64, tag uint8, required bool) error {
	return readNumber(d, v, tag, required, upTo(TypeInt8), "int64")
}

// ReadUint8 reads an unsigned byte, stored as a short.
func (d *Decoder) ReadUint8(v *uint8, tag uint8, required bool) error {
	return readNumber(d, v, tag, required, upTo(TypeInt2), "uint8")
}

// ReadUint16 reads an unsigned short, stored as an int.
func (d *Decoder) ReadUint16(v *uint16, tag uint8, required bool) error {
	return readNumber(d, v, tag, required, upTo(TypeInt4), "uint16")
}

// ReadUint32 reads an unsigned int, stored as a long.
func (d *Decoder) ReadUint32(v *uint32, tag uint8, required bool) error {
	return readNumber(d, v, tag, required, upTo(TypeInt8), "uint32")
}

// ReadFloat reads a float (ZERO or FLOAT).
func (d *Decoder) ReadFloat(v *float32, tag uint8, required bool) error {
	return readNumber(d, v, tag, required, 1<<TypeFloat, "float32")
}

// ReadDouble reads a double (ZERO, FLOAT or DOUBLE).
func (d *Decoder) ReadDouble(v *float64, tag uint8, required bool) error {
	return readNumber(d, v, tag, required, 1<<TypeFloat|1<<TypeDouble, "float64")
}

// ReadString reads a string (STRING1 or STRING4).
func (d *Decoder) ReadString(v *string, tag uint8, required bool) error {
	s, ok, err := d.stringField(tag, required)
	if ok {
		*v = string(s)
	}
	return err
}

// readName reads a servant or function name, interned.
func (d *Decoder) readName(v *string, tag uint8, required bool) error {
	s, ok, err := d.stringField(tag, required)
	if ok {
		*v = intern(s)
	}
	return err
}

// stringField reads the bytes of a string field; they alias the input.
func (d *Decoder) stringField(tag uint8, required bool) (s []byte, ok bool, err error) {
	typ, ok, err := d.field(tag, required, "string", 1<<TypeString1|1<<TypeString4)
	if ok {
		s, err = d.str(int(tag), typ)
	}
	return s, ok && err == nil, err
}

// ReadBytes reads a vector<byte>: a SIMPLE_LIST, which *v aliases, or a LIST of INT1, copied.
func (d *Decoder) ReadBytes(v *[]byte, tag uint8, required bool) error {
	typ, ok, err := d.field(tag, required, "vector<byte>", 1<<TypeSimpleList|1<<TypeList)
	if !ok {
		return err
	}
	if typ == TypeSimpleList {
		p, err := d.simpleList(int(tag))
		if err == nil {
			*v = p
		}
		return err
	}
	n, err := d.count(int(tag), 1, "list") // a LIST of INT1, copied
	if err != nil {
		return err
	}
	p := make([]byte, n)
	for i := range p {
		at := d.off
		etag, etyp, err := d.head(int(tag))
		if err == nil && (etag != 0 || etyp != TypeInt1 && etyp != TypeZero) {
			err = decodeErr(at, int(tag), "vector<byte> element %d: want INT1 at tag 0, found %s at tag %d", i, typeNames[etyp], etag)
		}
		var e int64
		if err == nil {
			e, err = d.integer(int(tag), etyp)
		}
		if err != nil {
			return err
		}
		p[i] = byte(e)
	}
	*v = p
	return nil
}

// ReadListLen reads the head and count of a LIST; read its n elements at tag 0
// next. n is at most MaxLen, yet grow what holds them as they decode.
func (d *Decoder) ReadListLen(tag uint8, required bool) (n int, ok bool, err error) {
	return d.container(tag, required, TypeList, 0)
}

// ReadMapLen reads the head and count of a MAP; then read its n pairs, each
// key at tag 0 and value at tag 1. n is bounded as in ReadListLen.
func (d *Decoder) ReadMapLen(tag uint8, required bool) (n int, ok bool, err error) {
	return d.container(tag, required, TypeMap, 0)
}

// container reads the head and count of a list or map whose elements need
// at least per bytes each (0: judge by the first element; a string pair is 4).
func (d *Decoder) container(tag uint8, required bool, want byte, per uint64) (n int, ok bool, err error) {
	what, least := "list", uint64(1) // a number may be a bare ZERO head
	if want == TypeMap {
		what, least = "map", 2 // and so may its value
	}
	if _, ok, err = d.field(tag, required, what, 1<<want); !ok {
		return 0, false, err
	}
	start := d.off
	n, err = d.count(int(tag), cmp.Or(per, least), what)
	if err == nil && per == 0 && n > 0 {
		if t := d.buf[d.off] & 0x0F; t > TypeDouble && t != TypeZero { // 2 bytes at least
			d.off = start
			n, err = d.count(int(tag), least+1, what)
		}
	}
	if limit := cmp.Or(max(d.MaxLen, 0), DefaultMaxLen); err == nil && n > limit {
		err = decodeErr(d.at, int(tag), "%s of %d elements exceeds the limit of %d", what, n, limit)
	}
	if err != nil {
		return 0, false, err
	}
	return n, true, nil
}

// ReadStringMap reads a map<string,string>. An empty map reads as nil.
func (d *Decoder) ReadStringMap(v *map[string]string, tag uint8, required bool) error {
	return readMap(d, v, tag, required, math.MaxInt)
}

// readMap reads a map of string to string or vector<byte> (aliasing the
// input) whose keys and values take at most limit bytes. Empty reads as nil.
func readMap[V string | []byte](d *Decoder, v *map[string]V, tag uint8, required bool, limit int) error {
	n, ok, err := d.container(tag, required, TypeMap, 4)
	if !ok {
		return err
	}
	var m map[string]V
	if n > 0 {
		m = make(map[string]V, min(n, preSize))
	}
	_, isString := any(m).(map[string]string)
	size := 0
	for range n {
		var k, e []byte
		if k, _, err = d.stringField(0, true); err == nil {
			if isString {
				e, _, err = d.stringField(1, true)
			} else {
				err = d.ReadBytes(&e, 1, true)
			}
		}
		if err != nil {
			return err
		}
		if size += len(k) + len(e); size > limit {
			return decodeErr(d.at, int(tag), "map keys and values exceed %d bytes", limit)
		}
		m[string(k)] = V(e)
	}
	*v = m
	return nil
}

// ReadStructBegin enters the struct at tag; read its fields, then call ReadStructEnd.
func (d *Decoder) ReadStructBegin(tag uint8, required bool) (ok bool, err error) {
	_, ok, err = d.field(tag, required, "struct", 1<<TypeStructBegin)
	switch {
	case !ok:
		return false, err
	case d.depth >= MaxDepth:
		return false, decodeErr(d.at, int(tag), "nesting deeper than %d", MaxDepth)
	}
	d.depth++
	return true, nil
}

// ReadStructEnd skips the fields of the current struct not read (newer peers
// add fields) and consumes its STRUCT_END.
func (d *Decoder) ReadStructEnd() error {
	d.depth = max(d.depth-1, 0) // the struct's own level
	return d.skip(-1, TypeStructBegin)
}

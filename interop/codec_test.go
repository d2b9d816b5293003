package interop

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/TarsCloud/TarsGo/tars/protocol/codec"

	"github.com/tarsws/websocketserver/tars"
)

// codecCase is one value written and read by both codecs.
type codecCase struct {
	name   string
	same   bool // the encoding is deterministic: both must write the same bytes
	want   any
	goEnc  func(*codec.Buffer) error
	ourEnc func([]byte) []byte
	goDec  func([]byte) (any, error)
	ourDec func([]byte) (any, error)
}

func (c codecCase) run(t *testing.T) {
	t.Helper()
	gb := codec.NewBuffer()
	if err := c.goEnc(gb); err != nil {
		t.Fatalf("TarsGo encode: %v", err)
	}
	goBytes := gb.ToBytes()
	ourBytes := c.ourEnc(nil)
	if c.same && !bytes.Equal(goBytes, ourBytes) {
		t.Errorf("bytes differ\nTarsGo: %s\nours:   %s", hex.EncodeToString(goBytes), hex.EncodeToString(ourBytes))
	}
	if got, err := c.goDec(goBytes); err != nil || !reflect.DeepEqual(got, c.want) {
		t.Fatalf("TarsGo round trip (test is wrong): got %#v, %v; want %#v", got, err, c.want)
	}
	if got, err := c.ourDec(goBytes); err != nil {
		t.Errorf("ours decoding TarsGo's %s: %v", hex.EncodeToString(goBytes), err)
	} else if !reflect.DeepEqual(got, c.want) {
		t.Errorf("ours decoding TarsGo's %s: got %#v, want %#v", hex.EncodeToString(goBytes), got, c.want)
	}
	if got, err := c.goDec(ourBytes); err != nil {
		t.Errorf("TarsGo decoding ours %s: %v", hex.EncodeToString(ourBytes), err)
	} else if !reflect.DeepEqual(got, c.want) {
		t.Errorf("TarsGo decoding ours %s: got %#v, want %#v", hex.EncodeToString(ourBytes), got, c.want)
	}
}

// scalar builds the case of one value v at tag from the two codecs' own
// functions for its type.
func scalar[T any](name string, tag uint8, v T,
	goW func(*codec.Buffer, T, byte) error, goR func(*codec.Reader, *T, byte, bool) error,
	ourW func([]byte, uint8, T) []byte, ourR func(*tars.Decoder, *T, uint8, bool) error) codecCase {
	return codecCase{
		name:   fmt.Sprintf("%s/tag%d/%v", name, tag, short(v)),
		same:   true,
		want:   v,
		goEnc:  func(b *codec.Buffer) error { return goW(b, v, tag) },
		ourEnc: func(b []byte) []byte { return ourW(b, tag, v) },
		goDec: func(p []byte) (any, error) {
			var got T
			err := goR(codec.NewReader(p), &got, tag, true)
			return got, err
		},
		ourDec: func(p []byte) (any, error) {
			var got T
			err := ourR(tars.NewDecoder(p), &got, tag, true)
			return got, err
		},
	}
}

// short names a value in a subtest name without pasting 300-byte strings.
func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 16 {
		return fmt.Sprintf("len%d", len(s))
	}
	return s
}

func appendInt[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32](b []byte, tag uint8, v T) []byte {
	return tars.AppendInt(b, tag, int64(v))
}

var testTags = []uint8{0, 1, 14, 15, 16, 200, 255}

func TestCodecScalars(t *testing.T) {
	var cases []codecCase
	for _, tag := range testTags {
		for _, v := range []bool{false, true} {
			cases = append(cases, scalar("bool", tag, v, (*codec.Buffer).WriteBool, (*codec.Reader).ReadBool, tars.AppendBool, (*tars.Decoder).ReadBool))
		}
		for _, v := range []int8{math.MinInt8, -1, 0, 1, math.MaxInt8} {
			cases = append(cases, scalar("int8", tag, v, (*codec.Buffer).WriteInt8, (*codec.Reader).ReadInt8, appendInt[int8], (*tars.Decoder).ReadInt8))
		}
		for _, v := range []int16{math.MinInt16, math.MinInt8 - 1, math.MinInt8, -1, 0, 1, math.MaxInt8, math.MaxInt8 + 1, math.MaxInt16} {
			cases = append(cases, scalar("int16", tag, v, (*codec.Buffer).WriteInt16, (*codec.Reader).ReadInt16, appendInt[int16], (*tars.Decoder).ReadInt16))
		}
		for _, v := range []int32{math.MinInt32, math.MinInt16 - 1, math.MinInt16, -129, -1, 0, 1, 128, math.MaxInt16, math.MaxInt16 + 1, math.MaxInt32} {
			cases = append(cases, scalar("int32", tag, v, (*codec.Buffer).WriteInt32, (*codec.Reader).ReadInt32, appendInt[int32], (*tars.Decoder).ReadInt32))
		}
		for _, v := range []int64{math.MinInt64, math.MinInt32 - 1, math.MinInt32, -32769, -1, 0, 1, 32768, math.MaxInt32, math.MaxInt32 + 1, math.MaxInt64} {
			cases = append(cases, scalar("int64", tag, v, (*codec.Buffer).WriteInt64, (*codec.Reader).ReadInt64, appendInt[int64], (*tars.Decoder).ReadInt64))
		}
		for _, v := range []uint8{0, 1, math.MaxInt8, math.MaxInt8 + 1, math.MaxUint8} {
			cases = append(cases, scalar("uint8", tag, v, (*codec.Buffer).WriteUint8, (*codec.Reader).ReadUint8, appendInt[uint8], (*tars.Decoder).ReadUint8))
		}
		for _, v := range []uint16{0, 1, math.MaxInt16, math.MaxInt16 + 1, math.MaxUint16} {
			cases = append(cases, scalar("uint16", tag, v, (*codec.Buffer).WriteUint16, (*codec.Reader).ReadUint16, appendInt[uint16], (*tars.Decoder).ReadUint16))
		}
		for _, v := range []uint32{0, 1, math.MaxInt32, math.MaxInt32 + 1, math.MaxUint32} {
			cases = append(cases, scalar("uint32", tag, v, (*codec.Buffer).WriteUint32, (*codec.Reader).ReadUint32, appendInt[uint32], (*tars.Decoder).ReadUint32))
		}
		for _, v := range []float32{0, float32(math.Copysign(0, -1)), 1.5, -3.25e-3, math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Inf(1)), float32(math.Inf(-1))} {
			cases = append(cases, scalar("float", tag, v, (*codec.Buffer).WriteFloat32, (*codec.Reader).ReadFloat32, tars.AppendFloat, (*tars.Decoder).ReadFloat))
		}
		for _, v := range []float64{0, math.Copysign(0, -1), 1.5, -3.25e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1)} {
			cases = append(cases, scalar("double", tag, v, (*codec.Buffer).WriteFloat64, (*codec.Reader).ReadFloat64, tars.AppendDouble, (*tars.Decoder).ReadDouble))
		}
		for _, v := range testStrings() {
			cases = append(cases, scalar("string", tag, v, (*codec.Buffer).WriteString, (*codec.Reader).ReadString, tars.AppendString, (*tars.Decoder).ReadString))
		}
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}

func testStrings() []string {
	return []string{
		"", "a", "héllo, 世界", "nul\x00inside\xff",
		strings.Repeat("x", 255), strings.Repeat("y", 256), strings.Repeat("z", 300),
		strings.Repeat("long", 20000),
	}
}

// TestCodecFloatsSignBits checks what reflect.DeepEqual cannot: -0 keeps its
// sign through both codecs (the byte comparison above covers encoding).
func TestCodecFloatsSignBits(t *testing.T) {
	neg := math.Copysign(0, -1)
	gb := codec.NewBuffer()
	if err := gb.WriteFloat64(neg, 3); err != nil {
		t.Fatal(err)
	}
	var got float64
	if err := tars.NewDecoder(gb.ToBytes()).ReadDouble(&got, 3, true); err != nil {
		t.Fatal(err)
	}
	if math.Float64bits(got) != math.Float64bits(neg) {
		t.Errorf("ours read TarsGo's -0 as %v (bits %x)", got, math.Float64bits(got))
	}
}

// TestCodecNarrowReads: TarsGo reads a FLOAT as a double, and both accept
// any narrower integer, sign-extended.
func TestCodecNarrowReads(t *testing.T) {
	gb := codec.NewBuffer()
	must(t, gb.WriteFloat32(2.5, 1))
	must(t, gb.WriteInt8(-7, 2))
	must(t, gb.WriteInt16(-300, 3))
	must(t, gb.WriteInt32(-70000, 4))
	d := tars.NewDecoder(gb.ToBytes())
	var f float64
	var a, b, c int64
	must(t, d.ReadDouble(&f, 1, true))
	must(t, d.ReadInt64(&a, 2, true))
	must(t, d.ReadInt64(&b, 3, true))
	must(t, d.ReadInt64(&c, 4, true))
	if f != 2.5 || a != -7 || b != -300 || c != -70000 {
		t.Errorf("got %v %d %d %d, want 2.5 -7 -300 -70000", f, a, b, c)
	}

	ours := tars.AppendFloat(nil, 1, 2.5)
	ours = tars.AppendInt(ours, 2, -7)
	ours = tars.AppendInt(ours, 3, -300)
	r := codec.NewReader(ours)
	var gf float64
	var ga, gbb int64
	must(t, r.ReadFloat64(&gf, 1, true))
	must(t, r.ReadInt64(&ga, 2, true))
	must(t, r.ReadInt64(&gbb, 3, true))
	if gf != 2.5 || ga != -7 || gbb != -300 {
		t.Errorf("TarsGo got %v %d %d, want 2.5 -7 -300", gf, ga, gbb)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Bytes, vectors and maps, written the way tars2go generates them.

func goWriteBytes(b *codec.Buffer, v []byte, tag byte) error {
	if err := b.WriteHead(codec.SimpleList, tag); err != nil {
		return err
	}
	if err := b.WriteHead(codec.BYTE, 0); err != nil {
		return err
	}
	if err := b.WriteInt32(int32(len(v)), 0); err != nil {
		return err
	}
	return b.WriteBytes(v)
}

func goReadBytes(r *codec.Reader, v *[]byte, tag byte, require bool) error {
	have, ty, err := r.SkipToNoCheck(tag, require)
	if err != nil || !have {
		return err
	}
	if ty != codec.SimpleList {
		return fmt.Errorf("vector<byte> at tag %d has type %d", tag, ty)
	}
	if _, err := r.SkipTo(codec.BYTE, 0, true); err != nil {
		return err
	}
	var n int32
	if err := r.ReadInt32(&n, 0, true); err != nil {
		return err
	}
	*v = []byte{} // tars2go's reader leaves an empty vector untouched
	return r.ReadSliceUint8(v, n, true)
}

// ourReadBytes reads an empty vector<byte> as an empty slice, never nil,
// so results compare equal to TarsGo's.
func ourReadBytes(d *tars.Decoder, v *[]byte, tag uint8, required bool) error {
	if err := d.ReadBytes(v, tag, required); err != nil {
		return err
	}
	if *v == nil {
		*v = []byte{}
	}
	return nil
}

func goWriteStrings(b *codec.Buffer, v []string, tag byte) error {
	if err := b.WriteHead(codec.LIST, tag); err != nil {
		return err
	}
	if err := b.WriteInt32(int32(len(v)), 0); err != nil {
		return err
	}
	for _, s := range v {
		if err := b.WriteString(s, 0); err != nil {
			return err
		}
	}
	return nil
}

func goReadStrings(r *codec.Reader, v *[]string, tag byte, require bool) error {
	have, err := r.SkipTo(codec.LIST, tag, require)
	if err != nil || !have {
		return err
	}
	var n int32
	if err := r.ReadInt32(&n, 0, true); err != nil {
		return err
	}
	*v = make([]string, n)
	for i := range *v {
		if err := r.ReadString(&(*v)[i], 0, true); err != nil {
			return err
		}
	}
	return nil
}

func ourAppendStrings(b []byte, tag uint8, v []string) []byte {
	b = tars.AppendListHead(b, tag, len(v))
	for _, s := range v {
		b = tars.AppendString(b, 0, s)
	}
	return b
}

func ourReadStrings(d *tars.Decoder, v *[]string, tag uint8, required bool) error {
	n, ok, err := d.ReadListLen(tag, required)
	if !ok {
		return err
	}
	*v = make([]string, n)
	for i := range *v {
		if err := d.ReadString(&(*v)[i], 0, true); err != nil {
			return err
		}
	}
	return nil
}

func goWriteStringMap(b *codec.Buffer, m map[string]string, tag byte) error {
	if err := b.WriteHead(codec.MAP, tag); err != nil {
		return err
	}
	if err := b.WriteInt32(int32(len(m)), 0); err != nil {
		return err
	}
	for k, v := range m { // tars2go's order: Go's map order
		if err := b.WriteString(k, 0); err != nil {
			return err
		}
		if err := b.WriteString(v, 1); err != nil {
			return err
		}
	}
	return nil
}

func goReadStringMap(r *codec.Reader, m *map[string]string, tag byte, require bool) error {
	have, err := r.SkipTo(codec.MAP, tag, require)
	if err != nil || !have {
		return err
	}
	var n int32
	if err := r.ReadInt32(&n, 0, true); err != nil {
		return err
	}
	*m = map[string]string{}
	for range n {
		var k, v string
		if err := r.ReadString(&k, 0, true); err != nil {
			return err
		}
		if err := r.ReadString(&v, 1, true); err != nil {
			return err
		}
		(*m)[k] = v
	}
	return nil
}

// ourReadStringMap reads like ReadStringMap but gives an empty map, not
// nil, so results compare equal to TarsGo's.
func ourReadStringMap(d *tars.Decoder, m *map[string]string, tag uint8, required bool) error {
	if err := d.ReadStringMap(m, tag, required); err != nil {
		return err
	}
	if *m == nil {
		*m = map[string]string{}
	}
	return nil
}

func goWriteIntStringsMap(b *codec.Buffer, m map[int32][]string, tag byte) error {
	if err := b.WriteHead(codec.MAP, tag); err != nil {
		return err
	}
	if err := b.WriteInt32(int32(len(m)), 0); err != nil {
		return err
	}
	for k, v := range m {
		if err := b.WriteInt32(k, 0); err != nil {
			return err
		}
		if err := goWriteStrings(b, v, 1); err != nil {
			return err
		}
	}
	return nil
}

func goReadIntStringsMap(r *codec.Reader, m *map[int32][]string, tag byte, require bool) error {
	have, err := r.SkipTo(codec.MAP, tag, require)
	if err != nil || !have {
		return err
	}
	var n int32
	if err := r.ReadInt32(&n, 0, true); err != nil {
		return err
	}
	*m = map[int32][]string{}
	for range n {
		var k int32
		var v []string
		if err := r.ReadInt32(&k, 0, true); err != nil {
			return err
		}
		if err := goReadStrings(r, &v, 1, true); err != nil {
			return err
		}
		(*m)[k] = v
	}
	return nil
}

func ourAppendIntStringsMap(b []byte, tag uint8, m map[int32][]string) []byte {
	b = tars.AppendMapHead(b, tag, len(m))
	for k, v := range m {
		b = tars.AppendInt(b, 0, int64(k))
		b = ourAppendStrings(b, 1, v)
	}
	return b
}

func ourReadIntStringsMap(d *tars.Decoder, m *map[int32][]string, tag uint8, required bool) error {
	n, ok, err := d.ReadMapLen(tag, required)
	if !ok {
		return err
	}
	*m = map[int32][]string{}
	for range n {
		var k int32
		var v []string
		if err := d.ReadInt32(&k, 0, true); err != nil {
			return err
		}
		if err := ourReadStrings(d, &v, 1, true); err != nil {
			return err
		}
		(*m)[k] = v
	}
	return nil
}

func TestCodecContainers(t *testing.T) {
	var cases []codecCase
	for _, tag := range testTags {
		for _, v := range [][]byte{{}, {0}, {1, 2, 0xff}, bytes.Repeat([]byte{0xab}, 255), bytes.Repeat([]byte{7}, 300)} {
			cases = append(cases, scalar("bytes", tag, v, goWriteBytes, goReadBytes, tars.AppendBytes, ourReadBytes))
		}
		for _, v := range [][]string{{}, {""}, {"a", "bc", strings.Repeat("d", 300)}} {
			cases = append(cases, scalar("strings", tag, v, goWriteStrings, goReadStrings, ourAppendStrings, ourReadStrings))
		}
		// Go map order makes TarsGo's bytes for more than one pair vary.
		for _, v := range []map[string]string{{}, {"k": "v"}, {"": strings.Repeat("v", 256)}} {
			cases = append(cases, scalar("map", tag, v, goWriteStringMap, goReadStringMap, tars.AppendStringMap, ourReadStringMap))
		}
		many := scalar("map", tag, map[string]string{"a": "1", "b": "2", "c": "", "long": strings.Repeat("x", 300)},
			goWriteStringMap, goReadStringMap, tars.AppendStringMap, ourReadStringMap)
		many.same = false
		cases = append(cases, many)
		for _, v := range []map[int32][]string{{}, {-1: {}}, {70000: {"a", "b"}}} {
			cases = append(cases, scalar("intmap", tag, v, goWriteIntStringsMap, goReadIntStringsMap, ourAppendIntStringsMap, ourReadIntStringsMap))
		}
		manyInt := scalar("intmap", tag, map[int32][]string{0: {"zero"}, 1: {}, math.MaxInt32: {"x", "y"}, math.MinInt32: {strings.Repeat("s", 260)}},
			goWriteIntStringsMap, goReadIntStringsMap, ourAppendIntStringsMap, ourReadIntStringsMap)
		manyInt.same = false
		cases = append(cases, manyInt)
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}

// TestCodecBytesAsList: TarsGo and the reference accept vector<byte> sent as
// a LIST of INT1, as old peers write it.
func TestCodecBytesAsList(t *testing.T) {
	gb := codec.NewBuffer()
	must(t, gb.WriteHead(codec.LIST, 7))
	must(t, gb.WriteInt32(3, 0))
	for _, v := range []int8{1, 0, -1} {
		must(t, gb.WriteInt8(v, 0))
	}
	var got []byte
	must(t, tars.NewDecoder(gb.ToBytes()).ReadBytes(&got, 7, true))
	if !bytes.Equal(got, []byte{1, 0, 0xff}) {
		t.Errorf("got % x, want 01 00 ff", got)
	}
}

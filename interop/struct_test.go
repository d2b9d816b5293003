package interop

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/TarsCloud/TarsGo/tars/protocol/codec"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/endpointf"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/nodef"

	"github.com/tarsws/websocketserver/tars"
)

// The IDL of this file's structs:
//
//	struct Inner   { 0 require int id; 1 optional string name; 2 optional vector<string> tags; };
//	struct InnerV2 { the fields of Inner; 3 optional long big; 4 optional map<string,string> attrs;
//	                 20 optional Inner child; 200 optional vector<byte> blob; 255 optional double d; };
//	struct Outer   { 0 require Inner first; 1 require vector<Inner> list; 14 require bool flag;
//	                 15 require float f; 16 require string after; };
//
// InnerV2 is a newer Inner: a reader that knows only Inner must skip the
// new fields, nested struct included, and go on with Outer's fields.
// The TarsGo side is written the way tars2go generates it.

type Inner struct {
	ID   int32
	Name string
	Tags []string
}

type InnerV2 struct {
	Inner
	Big   int64
	Attrs map[string]string
	Child *Inner
	Blob  []byte
	D     float64
}

type Outer struct {
	First Inner
	List  []Inner
	Flag  bool
	F     float32
	After string
}

// ---- TarsGo side, tars2go's shape ----

func (st *Inner) WriteTo(b *codec.Buffer) error {
	if err := b.WriteInt32(st.ID, 0); err != nil {
		return err
	}
	if st.Name != "" {
		if err := b.WriteString(st.Name, 1); err != nil {
			return err
		}
	}
	if len(st.Tags) > 0 {
		if err := goWriteStrings(b, st.Tags, 2); err != nil {
			return err
		}
	}
	return nil
}

func (st *Inner) WriteBlock(b *codec.Buffer, tag byte) error {
	if err := b.WriteHead(codec.StructBegin, tag); err != nil {
		return err
	}
	if err := st.WriteTo(b); err != nil {
		return err
	}
	return b.WriteHead(codec.StructEnd, 0)
}

func (st *Inner) ReadFrom(r *codec.Reader) error {
	*st = Inner{}
	if err := r.ReadInt32(&st.ID, 0, true); err != nil {
		return err
	}
	if err := r.ReadString(&st.Name, 1, false); err != nil {
		return err
	}
	return goReadStrings(r, &st.Tags, 2, false)
}

func (st *Inner) ReadBlock(r *codec.Reader, tag byte, require bool) error {
	have, err := r.SkipTo(codec.StructBegin, tag, require)
	if err != nil || !have {
		return err
	}
	if err := st.ReadFrom(r); err != nil {
		return err
	}
	return r.SkipToStructEnd()
}

func (st *InnerV2) WriteBlock(b *codec.Buffer, tag byte) error {
	if err := b.WriteHead(codec.StructBegin, tag); err != nil {
		return err
	}
	if err := st.Inner.WriteTo(b); err != nil {
		return err
	}
	if err := b.WriteInt64(st.Big, 3); err != nil {
		return err
	}
	if err := goWriteStringMap(b, st.Attrs, 4); err != nil {
		return err
	}
	if st.Child != nil {
		if err := st.Child.WriteBlock(b, 20); err != nil {
			return err
		}
	}
	if err := goWriteBytes(b, st.Blob, 200); err != nil {
		return err
	}
	if err := b.WriteFloat64(st.D, 255); err != nil {
		return err
	}
	return b.WriteHead(codec.StructEnd, 0)
}

func (st *Outer) goWrite(b *codec.Buffer, first func(*codec.Buffer, byte) error, elems []func(*codec.Buffer, byte) error) error {
	if err := first(b, 0); err != nil {
		return err
	}
	if err := b.WriteHead(codec.LIST, 1); err != nil {
		return err
	}
	if err := b.WriteInt32(int32(len(elems)), 0); err != nil {
		return err
	}
	for _, e := range elems {
		if err := e(b, 0); err != nil {
			return err
		}
	}
	if err := b.WriteBool(st.Flag, 14); err != nil {
		return err
	}
	if err := b.WriteFloat32(st.F, 15); err != nil {
		return err
	}
	return b.WriteString(st.After, 16)
}

func (st *Outer) ReadFrom(r *codec.Reader) error {
	*st = Outer{}
	if err := st.First.ReadBlock(r, 0, true); err != nil {
		return err
	}
	have, err := r.SkipTo(codec.LIST, 1, true)
	if err != nil || !have {
		return fmt.Errorf("list: %v", err)
	}
	var n int32
	if err := r.ReadInt32(&n, 0, true); err != nil {
		return err
	}
	st.List = make([]Inner, n)
	for i := range st.List {
		if err := st.List[i].ReadBlock(r, 0, true); err != nil {
			return err
		}
	}
	if err := r.ReadBool(&st.Flag, 14, true); err != nil {
		return err
	}
	if err := r.ReadFloat32(&st.F, 15, true); err != nil {
		return err
	}
	return r.ReadString(&st.After, 16, true)
}

// ---- our side, as product code uses package tars ----

func (st *Inner) append(b []byte, tag uint8) []byte {
	b = tars.AppendStructBegin(b, tag)
	b = tars.AppendInt(b, 0, int64(st.ID))
	if st.Name != "" {
		b = tars.AppendString(b, 1, st.Name)
	}
	if len(st.Tags) > 0 {
		b = ourAppendStrings(b, 2, st.Tags)
	}
	return tars.AppendStructEnd(b)
}

func (st *InnerV2) append(b []byte, tag uint8) []byte {
	b = tars.AppendStructBegin(b, tag)
	b = tars.AppendInt(b, 0, int64(st.ID))
	if st.Name != "" {
		b = tars.AppendString(b, 1, st.Name)
	}
	if len(st.Tags) > 0 {
		b = ourAppendStrings(b, 2, st.Tags)
	}
	b = tars.AppendInt(b, 3, st.Big)
	b = tars.AppendStringMap(b, 4, st.Attrs)
	if st.Child != nil {
		b = st.Child.append(b, 20)
	}
	b = tars.AppendBytes(b, 200, st.Blob)
	b = tars.AppendDouble(b, 255, st.D)
	return tars.AppendStructEnd(b)
}

func (st *Inner) decode(d *tars.Decoder, tag uint8) error {
	*st = Inner{}
	if _, err := d.ReadStructBegin(tag, true); err != nil {
		return err
	}
	if err := d.ReadInt32(&st.ID, 0, true); err != nil {
		return err
	}
	if err := d.ReadString(&st.Name, 1, false); err != nil {
		return err
	}
	if err := ourReadStrings(d, &st.Tags, 2, false); err != nil {
		return err
	}
	return d.ReadStructEnd()
}

func ourAppendOuter(b []byte, st *Outer, first func([]byte, uint8) []byte, elems []func([]byte, uint8) []byte) []byte {
	b = first(b, 0)
	b = tars.AppendListHead(b, 1, len(elems))
	for _, e := range elems {
		b = e(b, 0)
	}
	b = tars.AppendBool(b, 14, st.Flag)
	b = tars.AppendFloat(b, 15, st.F)
	return tars.AppendString(b, 16, st.After)
}

func ourDecodeOuter(p []byte) (Outer, error) {
	var st Outer
	d := tars.NewDecoder(p)
	if err := st.First.decode(d, 0); err != nil {
		return st, fmt.Errorf("first: %w", err)
	}
	n, _, err := d.ReadListLen(1, true)
	if err != nil {
		return st, fmt.Errorf("list: %w", err)
	}
	st.List = make([]Inner, n)
	for i := range st.List {
		if err := st.List[i].decode(d, 0); err != nil {
			return st, fmt.Errorf("list[%d]: %w", i, err)
		}
	}
	if err := d.ReadBool(&st.Flag, 14, true); err != nil {
		return st, err
	}
	if err := d.ReadFloat(&st.F, 15, true); err != nil {
		return st, err
	}
	return st, d.ReadString(&st.After, 16, true)
}

// newer returns an InnerV2 carrying in plus one value in every new field.
func newer(in Inner) *InnerV2 {
	child := Inner{ID: -5, Name: "child", Tags: []string{"c"}}
	return &InnerV2{Inner: in, Big: 1 << 40, Attrs: map[string]string{"k": strings.Repeat("v", 300)},
		Child: &child, Blob: bytes.Repeat([]byte{9}, 256), D: -2.5}
}

func sampleOuter() Outer {
	return Outer{
		First: Inner{ID: 1, Name: "first", Tags: []string{"a", "b"}},
		List:  []Inner{{ID: 0}, {ID: 70000, Name: strings.Repeat("n", 256)}, {ID: -1, Tags: []string{""}}},
		Flag:  true,
		F:     0.5,
		After: "after the structs",
	}
}

func TestCodecNestedStructs(t *testing.T) {
	want := sampleOuter()

	gb := codec.NewBuffer()
	var goElems []func(*codec.Buffer, byte) error
	var ourElems []func([]byte, uint8) []byte
	for i := range want.List {
		goElems = append(goElems, want.List[i].WriteBlock)
		ourElems = append(ourElems, want.List[i].append)
	}
	must(t, want.goWrite(gb, want.First.WriteBlock, goElems))
	ours := ourAppendOuter(nil, &want, want.First.append, ourElems)
	if !bytes.Equal(gb.ToBytes(), ours) {
		t.Errorf("bytes differ\nTarsGo: %x\nours:   %x", gb.ToBytes(), ours)
	}
	got, err := ourDecodeOuter(gb.ToBytes())
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ours decoding TarsGo's: %+v, %v", got, err)
	}
	var goGot Outer
	if err := goGot.ReadFrom(codec.NewReader(ours)); err != nil || !reflect.DeepEqual(goGot, want) {
		t.Errorf("TarsGo decoding ours: %+v, %v", goGot, err)
	}
}

func TestCodecNewerFieldsSkipped(t *testing.T) {
	want := sampleOuter()
	first := newer(want.First)

	gb := codec.NewBuffer()
	var goElems []func(*codec.Buffer, byte) error
	var ourElems []func([]byte, uint8) []byte
	for _, in := range want.List {
		v2 := newer(in)
		goElems = append(goElems, v2.WriteBlock)
		ourElems = append(ourElems, v2.append)
	}
	must(t, want.goWrite(gb, first.WriteBlock, goElems))
	ours := ourAppendOuter(nil, &want, first.append, ourElems)
	// Attrs has one pair, so even the map is deterministic here.
	if !bytes.Equal(gb.ToBytes(), ours) {
		t.Errorf("bytes differ\nTarsGo: %x\nours:   %x", gb.ToBytes(), ours)
	}

	got, err := ourDecodeOuter(gb.ToBytes())
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ours reading TarsGo's newer structs: %+v, %v", got, err)
	}
	var goGot Outer
	if err := goGot.ReadFrom(codec.NewReader(ours)); err != nil || !reflect.DeepEqual(goGot, want) {
		t.Errorf("TarsGo reading our newer structs: %+v, %v", goGot, err)
	}
}

// TestCodecFrameworkStructs uses structs tars2go generated for TarsGo itself:
// EndpointF (the registry's answer, with optional fields) and ServerInfo
// (tarsnode's keepAlive).
func TestCodecFrameworkStructs(t *testing.T) {
	eps := []endpointf.EndpointF{
		{Host: "127.0.0.1", Port: 10015, Timeout: 60000, Istcp: 1},
		{Host: "10.0.0.5", Port: 65535, Timeout: 3000, Istcp: 2, Grid: 1, SetId: "app.area.1", Weight: 100, WeightType: 1},
	}
	gb := codec.NewBuffer()
	must(t, gb.WriteHead(codec.LIST, 0))
	must(t, gb.WriteInt32(int32(len(eps)), 0))
	for i := range eps {
		must(t, eps[i].WriteBlock(gb, 0))
	}
	ours := tars.AppendListHead(nil, 0, len(eps))
	for _, e := range eps {
		ours = tars.AppendStructBegin(ours, 0)
		ours = tars.AppendString(ours, 0, e.Host)
		ours = tars.AppendInt(ours, 1, int64(e.Port))
		ours = tars.AppendInt(ours, 2, int64(e.Timeout))
		ours = tars.AppendInt(ours, 3, int64(e.Istcp))
		ours = tars.AppendInt(ours, 4, int64(e.Grid))
		for _, opt := range []struct {
			tag uint8
			v   int32
		}{{5, e.Groupworkid}, {6, e.Grouprealid}} {
			if opt.v != 0 {
				ours = tars.AppendInt(ours, opt.tag, int64(opt.v))
			}
		}
		if e.SetId != "" {
			ours = tars.AppendString(ours, 7, e.SetId)
		}
		for _, opt := range []struct {
			tag uint8
			v   int32
		}{{8, e.Qos}, {9, e.BakFlag}, {11, e.Weight}, {12, e.WeightType}, {13, e.AuthType}} {
			if opt.v != 0 {
				ours = tars.AppendInt(ours, opt.tag, int64(opt.v))
			}
		}
		ours = tars.AppendStructEnd(ours)
	}
	if !bytes.Equal(gb.ToBytes(), ours) {
		t.Errorf("vector<EndpointF> bytes differ\nTarsGo: %s\nours:   %s", hex.EncodeToString(gb.ToBytes()), hex.EncodeToString(ours))
	}
	d := tars.NewDecoder(gb.ToBytes())
	n, _, err := d.ReadListLen(0, true)
	must(t, err)
	for i := range n {
		var e endpointf.EndpointF
		_, err := d.ReadStructBegin(0, true)
		must(t, err)
		must(t, d.ReadString(&e.Host, 0, true))
		must(t, d.ReadInt32(&e.Port, 1, true))
		must(t, d.ReadInt32(&e.Timeout, 2, true))
		must(t, d.ReadInt32(&e.Istcp, 3, true))
		must(t, d.ReadInt32(&e.Grid, 4, true))
		must(t, d.ReadString(&e.SetId, 7, false))
		must(t, d.ReadInt32(&e.Weight, 11, false))
		must(t, d.ReadInt32(&e.WeightType, 12, false))
		must(t, d.ReadStructEnd())
		if !reflect.DeepEqual(e, eps[i]) {
			t.Errorf("endpoint %d: ours read %+v, want %+v", i, e, eps[i])
		}
	}

	si := nodef.ServerInfo{Application: "TestApp", ServerName: "WebsocketServer", Pid: 4242, Adapter: "TestApp.WebsocketServer.PushObjAdapter"}
	gb = codec.NewBuffer()
	must(t, si.WriteBlock(gb, 1))
	ours = tars.AppendStructBegin(nil, 1)
	ours = tars.AppendString(ours, 0, si.Application)
	ours = tars.AppendString(ours, 1, si.ServerName)
	ours = tars.AppendInt(ours, 2, int64(si.Pid))
	ours = tars.AppendString(ours, 3, si.Adapter)
	ours = tars.AppendStructEnd(ours)
	if !bytes.Equal(gb.ToBytes(), ours) {
		t.Errorf("ServerInfo bytes differ\nTarsGo: %x\nours:   %x", gb.ToBytes(), ours)
	}
	var back nodef.ServerInfo
	if err := back.ReadBlock(codec.NewReader(ours), 1, true); err != nil || back != si {
		t.Errorf("TarsGo reading our ServerInfo: %+v, %v", back, err)
	}
}

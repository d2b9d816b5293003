// Package testapp is the TarsGo side of the product's IDL (tars/Push.tars and
// tars/hello.tars), written by hand in the shape tars2go generates: a client
// proxy that calls TarsInvoke and a Dispatch for tars.AddServantWithContext.
// It is a test peer only.
//
// Unlike tars2go output, the proxies also speak TUP (version 3): TarsGo's
// generated clients always write TARS-layout arguments, so calling a TUP
// server needs the argument map built here and TupProtocol to read replies.
package testapp

import (
	"fmt"

	"github.com/TarsCloud/TarsGo/tars/protocol/codec"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
	"github.com/TarsCloud/TarsGo/tars/protocol/tup"
)

// argWriter lays out call arguments (or results) for one packet version:
// TARS puts each value at its IDL tag, TUP puts each value alone at tag 0
// under its parameter name in a map<string, vector<byte>>.
type argWriter struct {
	version int16
	buf     *codec.Buffer
	uni     *tup.UniAttribute
}

func newArgWriter(version int16) (*argWriter, error) {
	switch version {
	case basef.TARSVERSION:
		return &argWriter{version: version, buf: codec.NewBuffer()}, nil
	case basef.TUPVERSION:
		return &argWriter{version: version, uni: tup.NewUniAttribute()}, nil
	}
	return nil, fmt.Errorf("testapp: packet version %d not supported", version)
}

// put writes one value; names lists the TUP keys it goes under (the return
// value goes under both "" and "tars_ret").
func (w *argWriter) put(tag byte, write func(*codec.Buffer, byte) error, names ...string) error {
	if w.uni == nil {
		return write(w.buf, tag)
	}
	b := codec.NewBuffer()
	if err := write(b, 0); err != nil {
		return err
	}
	for _, n := range names {
		w.uni.PutBuffer(n, b.ToBytes())
	}
	return nil
}

func (w *argWriter) bytes() ([]byte, error) {
	if w.uni == nil {
		return w.buf.ToBytes(), nil
	}
	b := codec.NewBuffer()
	if err := w.uni.Encode(b); err != nil {
		return nil, err
	}
	return b.ToBytes(), nil
}

// argReader is the reading side of argWriter.
type argReader struct {
	r   *codec.Reader
	uni *tup.UniAttribute
}

func newArgReader(version int16, sbuf []byte) (*argReader, error) {
	switch version {
	case basef.TARSVERSION:
		return &argReader{r: codec.NewReader(sbuf)}, nil
	case basef.TUPVERSION:
		uni := tup.NewUniAttribute()
		if err := uni.Decode(codec.NewReader(sbuf)); err != nil {
			return nil, fmt.Errorf("testapp: TUP argument map: %w", err)
		}
		return &argReader{uni: uni}, nil
	}
	return nil, fmt.Errorf("testapp: packet version %d not supported", version)
}

// get reads the value at tag (TARS) or under name (TUP).
func (a *argReader) get(tag byte, name string, read func(*codec.Reader, byte) error) error {
	if a.uni == nil {
		return read(a.r, tag)
	}
	var b []byte
	if err := a.uni.GetBuffer(name, &b); err != nil {
		return err
	}
	return read(codec.NewReader(b), 0)
}

func readInt32(v *int32) func(*codec.Reader, byte) error {
	return func(r *codec.Reader, tag byte) error { return r.ReadInt32(v, tag, true) }
}

func readString(v *string) func(*codec.Reader, byte) error {
	return func(r *codec.Reader, tag byte) error { return r.ReadString(v, tag, true) }
}

func writeInt32(v int32) func(*codec.Buffer, byte) error {
	return func(b *codec.Buffer, tag byte) error { return b.WriteInt32(v, tag) }
}

func writeString(v string) func(*codec.Buffer, byte) error {
	return func(b *codec.Buffer, tag byte) error { return b.WriteString(v, tag) }
}

package tars

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Args (decoded) and Results (to encode) hide how the packet version lays
// out sBuffer: accessors take a parameter's tag and IDL name; the return
// value has tag 0 and name "", or retName (JSON) or both (TUP).
const retName = "tars_ret"

// decodeTUP reads a TUP sBuffer, a map<string, vector<byte>> at tag 0 whose values alias it.
func decodeTUP(sBuffer []byte) (m map[string][]byte, err error) {
	err = readMap(NewDecoder(sBuffer), &m, 0, true, math.MaxInt)
	return m, err
}

// AppendTUP appends m as a TUP sBuffer, keys in sorted order.
func AppendTUP(b []byte, m map[string][]byte) []byte { return appendMap(b, 0, m, AppendBytes) }

// ArgError reports an argument missing or not of the type asked for; a
// server answers it with ServerDecodeErr (-1).
type ArgError struct {
	Name string // IDL name, "" for the return value
	Tag  uint8
	Err  error
}

func (e *ArgError) Error() string {
	return fmt.Sprintf("tars: argument %s (tag %d): %v", cmp.Or(e.Name, "return value"), e.Tag, e.Err)
}

func (e *ArgError) Unwrap() error { return e.Err }

// argErr wraps a failure to read or write a parameter.
func argErr(tag uint8, name string, err error) error {
	if err != nil {
		return &ArgError{Name: name, Tag: tag, Err: err}
	}
	return nil
}

// Args are decoded arguments: a servant's in-parameters or a call's results.
type Args struct {
	// MaxLen bounds the lists and maps read next, as Decoder.MaxLen does
	// (not JSON arguments); set it before each Value whose size you know.
	MaxLen int

	version int16
	body    []byte                     // TARS
	tup     map[string][]byte          // TUP
	json    map[string]json.RawMessage // JSON
}

// NewArgs reads sBuffer, which it may alias, as version: TUP and JSON at once, TARS on demand.
func NewArgs(version int16, sBuffer []byte) (a *Args, err error) {
	a = &Args{version: version, body: sBuffer}
	switch version {
	case VersionTars:
	case VersionTUP:
		if a.tup, err = decodeTUP(sBuffer); err != nil {
			return nil, fmt.Errorf("tars: TUP argument map: %w", err)
		}
	case VersionJSON:
		if a.json, err = decodeJSONArgs(sBuffer); err != nil && len(sBuffer) > 0 { // empty: no arguments
			return nil, fmt.Errorf("tars: JSON arguments: %w", err)
		}
	default:
		return nil, fmt.Errorf("tars: unsupported packet version %d (want 1, 3 or 5)", version)
	}
	return a, nil
}

// decodeJSONArgs reads a JSON object, or null, of at most DefaultMaxLen members.
func decodeJSONArgs(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	t, err := dec.Token()
	if err == nil && t != json.Delim('{') && t != nil {
		err = errors.New("not an object")
	}
	m := make(map[string]json.RawMessage)
	for err == nil && t != nil && dec.More() {
		if len(m) == DefaultMaxLen {
			return nil, fmt.Errorf("more than %d members", DefaultMaxLen)
		}
		var key json.Token
		var v json.RawMessage
		if key, err = dec.Token(); err == nil {
			err = dec.Decode(&v)
			m[key.(string)] = v // an object's keys are strings
		}
	}
	if err == nil && t != nil {
		_, err = dec.Token() // the closing brace
	}
	if _, end := dec.Token(); err == nil && end != io.EOF {
		err = errors.New("data after the object")
	}
	return m, err
}

// Value reads a struct, vector or map parameter that read decodes at the tag given; not in JSON.
func (a *Args) Value(tag uint8, name string, read func(d *Decoder, tag uint8) error) error {
	d, t, err := a.at(tag, name)
	if err == nil {
		err = read(&d, t)
	}
	return argErr(tag, name, err)
}

// at returns a Decoder over the parameter and the tag to read it at.
func (a *Args) at(tag uint8, name string) (d Decoder, _ uint8, err error) {
	d = Decoder{buf: a.body, MaxLen: a.MaxLen}
	switch a.version {
	case VersionTars:
		return d, tag, nil
	case VersionTUP:
		var ok bool
		if d.buf, ok = a.tup[name]; !ok && name == "" {
			d.buf, ok = a.tup[retName]
		}
		if !ok {
			err = errors.New("missing")
		}
		return d, 0, err
	}
	return d, 0, fmt.Errorf("no Tars encoding in packet version %d", a.version)
}

// JSON unmarshals the parameter of a JSON (version 5) call into v.
func (a *Args) JSON(tag uint8, name string, v any) error {
	raw, ok := a.json[cmp.Or(name, retName)]
	err := errors.New("missing")
	switch {
	case a.version != VersionJSON:
		err = fmt.Errorf("not JSON but packet version %d", a.version)
	case ok:
		err = json.Unmarshal(raw, v)
	}
	return argErr(tag, name, err)
}

// JSONObject returns the parameters of a JSON (version 5) packet by name; nil for another version.
func (a *Args) JSONObject() map[string]json.RawMessage { return a.json }

// String reads a string parameter.
func (a *Args) String(tag uint8, name string) (string, error) { return arg[string](a, tag, name) }

// Bool reads a bool parameter.
func (a *Args) Bool(tag uint8, name string) (bool, error) { return arg[bool](a, tag, name) }

// Int32 reads an int (or enum) parameter.
func (a *Args) Int32(tag uint8, name string) (int32, error) { return arg[int32](a, tag, name) }

// arg reads a parameter of a basic type without allocating (not through Value).
func arg[T string | bool | int32](a *Args, tag uint8, name string) (v T, err error) {
	if a.version == VersionJSON {
		var j T // escapes, unlike v
		err := a.JSON(tag, name, &j)
		return j, err
	}
	d, t, err := a.at(tag, name)
	if err == nil {
		switch p := any(&v).(type) {
		case *string:
			err = d.ReadString(p, t, true)
		case *bool:
			err = d.ReadBool(p, t, true)
		case *int32:
			err = d.ReadInt32(p, t, true)
		}
	}
	return v, argErr(tag, name, err)
}

// Results are arguments to encode: a servant's return value and
// out-parameters, or a call's in-parameters. The zero Results encodes TARS.
type Results struct {
	version int16
	buf     []byte            // TARS: fields so far
	tup     map[string][]byte // TUP
	json    map[string]any    // JSON
	last    int               // TARS: last tag put, plus one (0: none yet)
	err     error             // first value that could not be encoded
}

// NewResults returns an empty Results for packet version.
func NewResults(version int16) *Results { return &Results{version: version} }

// Put adds a struct, vector or map parameter that write appends at the tag given; not in JSON.
func (r *Results) Put(tag uint8, name string, write func(b []byte, tag uint8) []byte) {
	switch v := cmp.Or(r.version, VersionTars); {
	case v == VersionTars && int(tag) < r.last: // readers expect ascending tags
		r.fail(tag, name, fmt.Errorf("put after tag %d: TARS fields go in ascending tag order", r.last-1))
	case v == VersionTars:
		r.buf, r.last = write(r.buf, tag), int(tag)+1
	case v == VersionTUP:
		if r.tup == nil {
			r.tup = make(map[string][]byte, 2)
		}
		r.tup[name] = write(nil, 0)
		if name == "" {
			r.tup[retName] = r.tup[name]
		}
	default:
		r.fail(tag, name, fmt.Errorf("no Tars encoding in packet version %d", v))
	}
}

// put adds v, encoded by app in TARS and TUP and by encoding/json in JSON.
func put[T any](r *Results, tag uint8, name string, v T, app func([]byte, uint8, T) []byte) {
	if r.version == VersionJSON {
		r.PutJSON(tag, name, v)
	} else {
		r.Put(tag, name, func(b []byte, t uint8) []byte { return app(b, t, v) })
	}
}

// PutJSON adds a parameter of a JSON (version 5) call, marshalled with encoding/json.
func (r *Results) PutJSON(tag uint8, name string, v any) {
	if r.version != VersionJSON {
		r.fail(tag, name, fmt.Errorf("not JSON but packet version %d", cmp.Or(r.version, VersionTars)))
		return
	}
	if r.json == nil {
		r.json = make(map[string]any, 2)
	}
	r.json[cmp.Or(name, retName)] = v
}

func (r *Results) fail(tag uint8, name string, err error) {
	r.err = cmp.Or(r.err, argErr(tag, name, err))
}

// PutString adds a string parameter.
func (r *Results) PutString(tag uint8, name string, v string) { put(r, tag, name, v, AppendString) }

// PutBool adds a bool parameter.
func (r *Results) PutBool(tag uint8, name string, v bool) { put(r, tag, name, v, AppendBool) }

// PutInt32 adds an int (or enum) parameter.
func (r *Results) PutInt32(tag uint8, name string, v int32) { put(r, tag, name, int64(v), AppendInt) }

// AppendTo appends the encoded sBuffer to b.
func (r *Results) AppendTo(b []byte) ([]byte, error) {
	if r.err != nil {
		return b, r.err
	}
	switch r.version {
	case 0, VersionTars:
		return append(b, r.buf...), nil
	case VersionTUP:
		return AppendTUP(b, r.tup), nil
	case VersionJSON:
		if r.json == nil {
			return append(b, "{}"...), nil
		}
		j, err := json.Marshal(r.json)
		if err != nil {
			return b, fmt.Errorf("tars: JSON results: %w", err)
		}
		return append(b, j...), nil
	}
	return b, fmt.Errorf("tars: unsupported packet version %d", r.version)
}

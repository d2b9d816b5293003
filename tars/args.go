package tars

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Arguments travel in sBuffer in the form the packet version says:
//
//	TARS (1): parameter i at tag i, the return value at tag 0
//	TUP  (3): a map of IDL name to the value encoded alone at tag 0; the
//	          return value under both "" and "tars_ret"
//	JSON (5): a JSON object by IDL name; the return value is "tars_ret"
//
// Args and Results hide the difference: every accessor takes both the tag
// and the name of a parameter, and the return value is the parameter with
// tag 0 and the empty name. A servant reads its in-parameters from Args and
// writes its return value and out-parameters into Results; a client does the
// opposite.

// retName is the TUP and JSON key of the return value.
const retName = "tars_ret"

// ArgError reports an argument that is missing or cannot be read as the
// type asked for. A server answers it with ServerDecodeErr (-1).
type ArgError struct {
	Name string // IDL name, "" for the return value
	Tag  uint8
	Err  error
}

func (e *ArgError) Error() string {
	name := e.Name
	if name == "" {
		name = "return value"
	}
	return fmt.Sprintf("tars: argument %s (tag %d): %v", name, e.Tag, e.Err)
}

func (e *ArgError) Unwrap() error { return e.Err }

// Args are decoded arguments: a servant's in-parameters or the results a
// client receives.
type Args struct {
	version int16
	body    []byte                     // TARS
	tup     map[string][]byte          // TUP
	json    map[string]json.RawMessage // JSON
}

// NewArgs reads sBuffer as version. A TUP or JSON buffer is parsed at once,
// so a malformed one is reported here; TARS fields are read on demand. The
// Args may alias sBuffer.
func NewArgs(version int16, sBuffer []byte) (*Args, error) {
	a := &Args{version: version}
	switch version {
	case VersionTars:
		a.body = sBuffer
	case VersionTUP:
		m, err := DecodeTUP(sBuffer)
		if err != nil {
			return nil, fmt.Errorf("tars: TUP argument map: %w", err)
		}
		a.tup = m
	case VersionJSON:
		if len(sBuffer) > 0 {
			if err := json.Unmarshal(sBuffer, &a.json); err != nil {
				return nil, fmt.Errorf("tars: JSON arguments: %w", err)
			}
		}
	default:
		return nil, fmt.Errorf("tars: unsupported packet version %d (want 1, 3 or 5)", version)
	}
	return a, nil
}

// Version returns the packet version the arguments came in.
func (a *Args) Version() int16 { return a.version }

// Value reads the parameter with a custom decoder, for structs, vectors and
// maps: read calls the Decoder's methods for the value at the tag it is
// given. JSON arguments have no Tars encoding, so Value fails on them; use
// JSON instead.
func (a *Args) Value(tag uint8, name string, read func(d *Decoder, tag uint8) error) error {
	var err error
	switch a.version {
	case VersionTars:
		err = read(NewDecoder(a.body), tag)
	case VersionTUP:
		v, ok := a.tup[name]
		if !ok && name == "" {
			v, ok = a.tup[retName]
		}
		if !ok {
			err = errors.New("missing")
		} else {
			err = read(NewDecoder(v), 0)
		}
	default:
		err = fmt.Errorf("no Tars encoding in packet version %d", a.version)
	}
	if err != nil {
		return &ArgError{Name: name, Tag: tag, Err: err}
	}
	return nil
}

// JSON unmarshals the parameter of a JSON (version 5) call into v.
func (a *Args) JSON(tag uint8, name string, v any) error {
	var err error
	if a.version != VersionJSON {
		err = fmt.Errorf("not JSON but packet version %d", a.version)
	} else {
		key := name
		if key == "" {
			key = retName
		}
		raw, ok := a.json[key]
		if !ok {
			err = errors.New("missing")
		} else {
			err = json.Unmarshal(raw, v)
		}
	}
	if err != nil {
		return &ArgError{Name: name, Tag: tag, Err: err}
	}
	return nil
}

// get reads one parameter with read, or from JSON into v.
func (a *Args) get(tag uint8, name string, v any, read func(d *Decoder, tag uint8) error) error {
	if a.version == VersionJSON {
		return a.JSON(tag, name, v)
	}
	return a.Value(tag, name, read)
}

// String reads a string parameter.
func (a *Args) String(tag uint8, name string) (string, error) {
	var v string
	err := a.get(tag, name, &v, func(d *Decoder, tag uint8) error { return d.ReadString(&v, tag, true) })
	return v, err
}

// Bool reads a bool parameter.
func (a *Args) Bool(tag uint8, name string) (bool, error) {
	var v bool
	err := a.get(tag, name, &v, func(d *Decoder, tag uint8) error { return d.ReadBool(&v, tag, true) })
	return v, err
}

// Int32 reads an int (or enum) parameter.
func (a *Args) Int32(tag uint8, name string) (int32, error) {
	var v int32
	err := a.get(tag, name, &v, func(d *Decoder, tag uint8) error { return d.ReadInt32(&v, tag, true) })
	return v, err
}

// Int64 reads a long parameter.
func (a *Args) Int64(tag uint8, name string) (int64, error) {
	var v int64
	err := a.get(tag, name, &v, func(d *Decoder, tag uint8) error { return d.ReadInt64(&v, tag, true) })
	return v, err
}

// Bytes reads a vector<byte> parameter (base64 in JSON). The result may
// alias the packet.
func (a *Args) Bytes(tag uint8, name string) ([]byte, error) {
	var v []byte
	err := a.get(tag, name, &v, func(d *Decoder, tag uint8) error { return d.ReadBytes(&v, tag, true) })
	return v, err
}

// StringMap reads a map<string,string> parameter.
func (a *Args) StringMap(tag uint8, name string) (map[string]string, error) {
	var v map[string]string
	err := a.get(tag, name, &v, func(d *Decoder, tag uint8) error { return d.ReadStringMap(&v, tag, true) })
	return v, err
}

// Results are arguments being encoded: a servant's return value and
// out-parameters, or the in-parameters a client sends. The zero Results
// encodes TARS (version 1).
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

// Version returns the packet version being encoded.
func (r *Results) Version() int16 {
	if r.version == 0 {
		return VersionTars
	}
	return r.version
}

// Put adds a parameter written by write, for structs, vectors and maps:
// write appends the value at the tag it is given. JSON has no Tars encoding;
// use PutJSON there.
func (r *Results) Put(tag uint8, name string, write func(b []byte, tag uint8) []byte) {
	switch r.Version() {
	case VersionTars:
		if int(tag) < r.last {
			r.fail(tag, name, fmt.Errorf("put after tag %d: TARS fields go in ascending tag order", r.last-1))
			return
		}
		r.buf, r.last = write(r.buf, tag), int(tag)+1
	case VersionTUP:
		if r.tup == nil {
			r.tup = make(map[string][]byte, 2)
		}
		v := write(nil, 0)
		if name == "" {
			r.tup[retName] = v
		}
		r.tup[name] = v
	default:
		r.fail(tag, name, fmt.Errorf("no Tars encoding in packet version %d", r.version))
	}
}

// PutJSON adds a parameter of a JSON (version 5) call; v is marshalled with
// encoding/json.
func (r *Results) PutJSON(tag uint8, name string, v any) {
	if r.Version() != VersionJSON {
		r.fail(tag, name, fmt.Errorf("not JSON but packet version %d", r.Version()))
		return
	}
	if r.json == nil {
		r.json = make(map[string]any, 2)
	}
	if name == "" {
		name = retName
	}
	r.json[name] = v
}

func (r *Results) fail(tag uint8, name string, err error) {
	if r.err == nil {
		r.err = &ArgError{Name: name, Tag: tag, Err: err}
	}
}

// put adds v as JSON or through write.
func (r *Results) put(tag uint8, name string, v any, write func(b []byte, tag uint8) []byte) {
	if r.Version() == VersionJSON {
		r.PutJSON(tag, name, v)
		return
	}
	r.Put(tag, name, write)
}

// PutString adds a string parameter.
func (r *Results) PutString(tag uint8, name string, v string) {
	r.put(tag, name, v, func(b []byte, tag uint8) []byte { return AppendString(b, tag, v) })
}

// PutBool adds a bool parameter.
func (r *Results) PutBool(tag uint8, name string, v bool) {
	r.put(tag, name, v, func(b []byte, tag uint8) []byte { return AppendBool(b, tag, v) })
}

// PutInt32 adds an int (or enum) parameter.
func (r *Results) PutInt32(tag uint8, name string, v int32) {
	r.put(tag, name, v, func(b []byte, tag uint8) []byte { return AppendInt(b, tag, int64(v)) })
}

// PutInt64 adds a long parameter.
func (r *Results) PutInt64(tag uint8, name string, v int64) {
	r.put(tag, name, v, func(b []byte, tag uint8) []byte { return AppendInt(b, tag, v) })
}

// PutBytes adds a vector<byte> parameter.
func (r *Results) PutBytes(tag uint8, name string, v []byte) {
	r.put(tag, name, v, func(b []byte, tag uint8) []byte { return AppendBytes(b, tag, v) })
}

// PutStringMap adds a map<string,string> parameter.
func (r *Results) PutStringMap(tag uint8, name string, v map[string]string) {
	r.put(tag, name, v, func(b []byte, tag uint8) []byte { return AppendStringMap(b, tag, v) })
}

// AppendTo appends the encoded sBuffer to b. TARS parameters must have been
// put in ascending tag order.
func (r *Results) AppendTo(b []byte) ([]byte, error) {
	if r.err != nil {
		return b, r.err
	}
	switch r.Version() {
	case VersionTars:
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
	return b, errors.New("tars: unsupported packet version " + strconv.Itoa(int(r.version)))
}

// reset empties r for reuse with version.
func (r *Results) reset(version int16) {
	*r = Results{version: version, buf: r.buf[:0]}
}

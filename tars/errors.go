package tars

import "fmt"

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

// FrameError reports a frame length outside [4, Max]. The connection that
// sent it cannot be resynchronised and should be closed.
type FrameError struct {
	Length int64 // the length field as received
	Max    int   // the limit in force
}

func (e *FrameError) Error() string {
	if e.Length < 4 {
		return fmt.Sprintf("tars: frame length %d is below the 4-byte minimum", e.Length)
	}
	return fmt.Sprintf("tars: frame length %d exceeds the limit of %d bytes", e.Length, e.Max)
}

package tars

import "fmt"

// DecodeError reports malformed Tars data: what was wrong, the tag of the
// value being read (-1 when not known) and the byte offset in the input.
type DecodeError struct {
	Offset int
	Tag    int
	What   string
}

func (e *DecodeError) Error() string {
	if e.Tag < 0 {
		return fmt.Sprintf("tars: decode at offset %d: %s", e.Offset, e.What)
	}
	return fmt.Sprintf("tars: decode tag %d at offset %d: %s", e.Tag, e.Offset, e.What)
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

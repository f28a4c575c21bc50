package codec

import (
	"encoding/hex"
	"errors"
)

// ErrMalformed matches (errors.Is) every error caused by the bytes themselves: input
// shorter than the 10-byte header, a wrong magic, a body that does not decode with
// its writer schema, trailing bytes after the body, or a length or element count over
// the catalog's limits. Such a record will never decode; consumers send it to the DLQ
// instead of retrying.
var ErrMalformed = errors.New("codec: malformed record")

// ErrUnknownSchema matches (errors.Is) an UnknownSchemaError: the header names a
// writer schema that this catalog does not know. Unlike ErrMalformed this may heal by
// deploying a build whose schemas/history includes the writer's schema.
var ErrUnknownSchema = errors.New("codec: unknown schema")

// ErrTypeMismatch is returned by DecodeInto when the record's writer schema belongs
// to a different Go type than the value passed in. It is a caller bug, not bad data.
var ErrTypeMismatch = errors.New("codec: value type does not match record")

// UnknownSchemaError reports a well-formed header whose fingerprint is not in the
// catalog. errors.Is(err, ErrUnknownSchema) is true.
type UnknownSchemaError struct {
	// Fingerprint is the 8 header bytes after the magic: CRC-64-AVRO, little-endian,
	// the same bytes (and hex) as in the schemas/history file names.
	Fingerprint [8]byte
}

// Error names the fingerprint in hex, as in the history file names.
func (e *UnknownSchemaError) Error() string {
	return "codec: unknown schema fingerprint " + hex.EncodeToString(e.Fingerprint[:])
}

// Is makes errors.Is(err, ErrUnknownSchema) true.
func (e *UnknownSchemaError) Is(target error) bool { return target == ErrUnknownSchema }

// DecodeError reports a body that could not be decoded with the writer schema named
// Name: truncated, trailing bytes, invalid values, or over the limits. It unwraps to
// the underlying cause and errors.Is(err, ErrMalformed) is true.
type DecodeError struct {
	Name string // full Avro name of the writer schema
	Err  error  // the cause
}

// Error names the writer schema and the cause.
func (e *DecodeError) Error() string {
	return "codec: decode " + e.Name + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrMalformed) true.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

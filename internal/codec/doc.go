// Package codec is the only way records get on and off Kafka: Avro single-object
// encoding (magic C3 01, the 8-byte CRC-64-AVRO fingerprint of the writer schema,
// then the Avro body), with a Catalog that knows every schema in schemas/ (current
// and history) by fingerprint.
//
// Writers always use the current schema of a record's full name; readers accept any
// released version and resolve it to the current schema, so events written years ago
// stay readable after the schemas evolve (backward compatibility, enforced by
// TestSchemaCompatibility over schemas/history).
//
// Input is treated as hostile: every body is validated against its writer schema
// (lengths, block counts, enum and union indexes, trailing bytes) before hamba/avro
// allocates anything, so the memory a corrupt or malicious record can cost is bounded
// by a small multiple of its own size, and it ends in an error matching ErrMalformed
// or ErrUnknownSchema rather than a panic (FuzzDecode).
//
// The Go types (OpenAccount, FundsDeposited, …) are generated from the .avsc files by
// hamba/avro's avrogen (see generate.go) and checked in.
package codec

package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"slices"
	"sort"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/soe"

	"github.com/cqrs-ledger/ledger/schemas"
)

const (
	// headerLen is the single-object-encoding header: 2 magic bytes + 8 fingerprint bytes.
	headerLen = 10

	defaultMaxBytes      = 1 << 20  // per string or bytes value
	defaultMaxSliceElems = 64 << 10 // per array or map value

	// pooledBufMax keeps one huge record from pinning its encode buffer in the pool.
	pooledBufMax = 64 << 10
)

// Catalog knows every schema in schemas/ (current and history) by CRC-64-AVRO
// fingerprint of its Parsing Canonical Form, and by the legacy fingerprint the ledger
// wrote before it followed the specification (see legacyFingerprint). It encodes with the current schema of a record's full name and decodes
// any known writer schema into the generated Go type, resolving older versions to the
// current one. It is immutable after NewCatalog and safe for concurrent use.
type Catalog struct {
	api           avro.API // one frozen config: its decoder cache and limits belong to this catalog
	maxBytes      int
	maxSliceElems int

	current  map[string]*currentSchema       // by full name
	byGoType map[reflect.Type]*currentSchema // by *T and T
	writers  map[[8]byte]*writerSchema       // every known writer schema, by fingerprint
	names    []string                        // sorted full names of current schemas

	readers sync.Pool // *avro.Reader
	writerP sync.Pool // *avro.Writer
}

// currentSchema is what encoding needs for one full name.
type currentSchema struct {
	name      string
	nameBytes []byte // name, shared by every AppendEncodeNamed result
	schema    avro.Schema
	header    [headerLen]byte
	plan      *plan // validates what we write against our own limits
	// lenBounded: a body no longer than both limits is within them (see
	// lenBounded in validate.go), so encoding skips the validation pass.
	lenBounded bool
	typ        *goType
}

// writerSchema is what decoding needs for one fingerprint.
type writerSchema struct {
	name   string
	source string      // file or option it came from, for error messages
	read   avro.Schema // the current schema, or the writer schema resolved to it
	plan   *plan       // the writer schema, compiled for validation
	typ    *goType
}

type options struct {
	writerSchemas [][]byte
	maxBytes      int
	maxSliceElems int
}

// Option configures NewCatalog.
type Option func(*options)

// WithWriterSchemas adds writer schemas (.avsc text) beyond schemas/, for example an
// older version in a test. Each must name a current schema and be readable by it
// (backward compatible), or NewCatalog fails.
func WithWriterSchemas(avsc ...[]byte) Option {
	return func(o *options) { o.writerSchemas = append(o.writerSchemas, avsc...) }
}

// WithLimits caps what one decoded value may allocate: maxBytes per string or bytes
// value (default 1 MiB) and maxSliceElems elements per array or map value (default
// 64 Ki). Both must be positive: the limits cannot be switched off, since the input
// is untrusted (hamba/avro #373). Encode refuses records that exceed them too, so a
// producer never writes what its consumers would reject.
func WithLimits(maxBytes, maxSliceElems int) Option {
	return func(o *options) { o.maxBytes, o.maxSliceElems = maxBytes, maxSliceElems }
}

// NewCatalog loads every schema embedded in package schemas (current *.avsc and
// history/*.avsc) plus the WithWriterSchemas ones. It fails, listing every problem, if
// a schema does not parse, a history file's name does not match its content, a
// schema has no generated Go type, or a writer schema cannot be resolved to the
// current schema of its name.
func NewCatalog(opts ...Option) (*Catalog, error) {
	o := options{maxBytes: defaultMaxBytes, maxSliceElems: defaultMaxSliceElems}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxBytes <= 0 || o.maxSliceElems <= 0 {
		return nil, fmt.Errorf("codec: limits must be positive, got maxBytes=%d maxSliceElems=%d", o.maxBytes, o.maxSliceElems)
	}
	api := avro.Config{MaxByteSliceSize: o.maxBytes, MaxSliceAllocSize: o.maxSliceElems}.Freeze()
	c := &Catalog{
		api:           api,
		maxBytes:      o.maxBytes,
		maxSliceElems: o.maxSliceElems,
		current:       map[string]*currentSchema{},
		byGoType:      map[reflect.Type]*currentSchema{},
		writers:       map[[8]byte]*writerSchema{},
	}
	c.readers.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(api)) }
	c.writerP.New = func() any { return avro.NewWriter(nil, 512, avro.WithWriterConfig(api)) }

	var errs []error
	currentFiles, _ := fs.Glob(schemas.FS, "*.avsc")
	for _, file := range currentFiles {
		if err := c.addCurrent("schemas/"+file, file); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 { // writers need every current schema
		return nil, errors.Join(errs...)
	}

	compat := avro.NewSchemaCompatibility()
	historyFiles, _ := fs.Glob(schemas.FS, "history/*.avsc")
	for _, file := range historyFiles {
		data, err := fs.ReadFile(schemas.FS, file)
		if err == nil {
			err = c.addWriter(compat, "schemas/"+file, data, path.Base(file))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	for i, data := range o.writerSchemas {
		if err := c.addWriter(compat, fmt.Sprintf("WithWriterSchemas[%d]", i), data, ""); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	for name := range c.current {
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)
	return c, nil
}

func (c *Catalog) addCurrent(source, file string) error {
	data, err := fs.ReadFile(schemas.FS, file)
	if err != nil {
		return fmt.Errorf("codec: %s: %w", source, err)
	}
	s, name, fp, err := parseSchema(data)
	if err != nil {
		return fmt.Errorf("codec: %s: %w", source, err)
	}
	if _, dup := c.current[name]; dup {
		return fmt.Errorf("codec: %s: %s is defined twice in schemas/", source, name)
	}
	typ, ok := typesByName[name]
	if !ok {
		return fmt.Errorf("codec: %s: no generated Go type for %s (run go generate ./internal/codec)", source, name)
	}
	p, err := compilePlan(s)
	if err != nil {
		return fmt.Errorf("codec: %s: %w", source, err)
	}
	cur := &currentSchema{name: name, nameBytes: []byte(name), schema: s, plan: p, typ: typ,
		lenBounded: lenBounded(p, 0, map[*plan]bool{})}
	copy(cur.header[:], soe.Magic)
	copy(cur.header[2:], fp[:])
	c.current[name] = cur
	c.byGoType[typ.ptr] = cur
	c.byGoType[typ.value] = cur
	ws := &writerSchema{name: name, source: source, read: s, plan: p, typ: typ}
	c.writers[fp] = ws
	legacy, err := legacyFingerprint(s)
	if err != nil {
		return fmt.Errorf("codec: %s: %w", source, err)
	}
	c.writers[legacy] = ws
	return nil
}

// addWriter registers an older (or newer) writer schema of a current name. file, when
// set, is a history file name that must be <full name>.<hex fingerprint>.avsc.
func (c *Catalog) addWriter(compat *avro.SchemaCompatibility, source string, data []byte, file string) error {
	s, name, fp, err := parseSchema(data)
	if err != nil {
		return fmt.Errorf("codec: %s: %w", source, err)
	}
	legacy, err := legacyFingerprint(s)
	if err != nil {
		return fmt.Errorf("codec: %s: %w", source, err)
	}
	if file != "" {
		if want := historyFileName(name, fp); file != want && file != historyFileName(name, legacy) {
			return fmt.Errorf("codec: %s: content is %s, so the file must be named %s", source, name, want)
		}
	}
	_, knownSpec := c.writers[fp]
	_, knownLegacy := c.writers[legacy]
	if knownSpec && knownLegacy {
		return nil // same canonical forms as a current or earlier writer schema
	}
	cur, ok := c.current[name]
	if !ok {
		return fmt.Errorf("codec: %s: %s has no current schema in schemas/", source, name)
	}
	read, err := compat.Resolve(cur.schema, s)
	if err != nil {
		return fmt.Errorf("codec: %s: writer schema %s %x cannot be read as the current %s: %w", source, name, fp, name, err)
	}
	p, err := compilePlan(s)
	if err != nil {
		return fmt.Errorf("codec: %s: %w", source, err)
	}
	ws := &writerSchema{name: name, source: source, read: read, plan: p, typ: cur.typ}
	for _, f := range [][8]byte{fp, legacy} {
		if _, known := c.writers[f]; !known {
			c.writers[f] = ws
		}
	}
	return nil
}

// parseSchema parses one self-contained .avsc and returns its fingerprint per the
// Avro specification: CRC-64-AVRO of its Parsing Canonical Form, the 8 header bytes
// that Java's BinaryMessageEncoder, fastavro and every other standard single-object
// encoder write. A private cache keeps older versions of a name out of hamba's
// process-wide DefaultSchemaCache, where the generated types registered the current
// ones.
func parseSchema(data []byte) (avro.Schema, string, [8]byte, error) {
	var fp [8]byte
	s, err := avro.ParseBytesWithCache(data, "", &avro.SchemaCache{})
	if err != nil {
		return nil, "", fp, err
	}
	named, ok := s.(avro.NamedSchema)
	if !ok || s.Type() != avro.Record {
		return nil, "", fp, fmt.Errorf("top-level schema is a %s, want a named record", s.Type())
	}
	fp, err = specFingerprint(data)
	if err != nil {
		return nil, "", fp, err
	}
	return s, named.FullName(), fp, nil
}

// specFingerprint is the fingerprint of the Parsing Canonical Form of the schema in
// data. hamba/avro's canonical form follows the specification except that it keeps
// "logicalType" attributes, which [STRIP] removes; the schema is therefore parsed
// again without them (the rest of a logical type, such as a decimal's precision, is
// dropped from hamba's form along with it).
func specFingerprint(data []byte) ([8]byte, error) {
	var fp [8]byte
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // defaults are parsed again, so keep their digits
	var v any
	if err := dec.Decode(&v); err != nil {
		return fp, err
	}
	stripped, err := json.Marshal(stripLogicalTypes(v))
	if err != nil {
		return fp, err
	}
	s, err := avro.ParseBytesWithCache(stripped, "", &avro.SchemaCache{})
	if err != nil {
		return fp, fmt.Errorf("without logical types: %w", err)
	}
	f, err := soe.ComputeFingerprint(s)
	if err != nil {
		return fp, err
	}
	copy(fp[:], f)
	return fp, nil
}

func stripLogicalTypes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		delete(x, "logicalType")
		for k, e := range x {
			x[k] = stripLogicalTypes(e)
		}
	case []any:
		for i, e := range x {
			x[i] = stripLogicalTypes(e)
		}
	}
	return v
}

// legacyFingerprint is the fingerprint this package wrote before it followed the
// specification (hamba/avro's canonical form, which keeps logicalType). Records
// already on the topics carry it, so every schema is known by it too, for ever.
func legacyFingerprint(s avro.Schema) ([8]byte, error) {
	var fp [8]byte
	f, err := soe.ComputeFingerprint(s)
	if err != nil {
		return fp, err
	}
	copy(fp[:], f)
	return fp, nil
}

// historyFileName is the name of the schemas/history file that records the schema
// fullName with the given SOE fingerprint: "<full name>.<16 hex digits>.avsc", the hex
// being the fingerprint bytes as they appear in a record's header. A version released
// before the ledger used the specification's fingerprints has a second file named by
// its legacy fingerprint, so that any reader can find it by the fingerprint in the
// header of the records written with it.
func historyFileName(fullName string, fingerprint [8]byte) string {
	return fmt.Sprintf("%s.%x.avsc", fullName, fingerprint[:])
}

var defaultCatalog = sync.OnceValue(func() *Catalog {
	c, err := NewCatalog()
	if err != nil {
		panic(fmt.Sprintf("codec: embedded schemas are broken: %v", err))
	}
	return c
})

// Default returns the process-wide catalog of the embedded schemas with default
// limits, built on first use. It panics only if the embedded schemas are broken,
// which TestDefaultCatalog rules out for every build that passed its tests.
func Default() *Catalog { return defaultCatalog() }

// Encode returns the single-object encoding of v, a pointer to a generated type (a
// value of one is accepted too): C3 01, the fingerprint of the current schema of v's
// full name, then the Avro body.
func (c *Catalog) Encode(v any) ([]byte, error) {
	cur, w, err := c.encodeBody(v)
	if err != nil {
		return nil, err
	}
	body := w.Buffer()
	out := make([]byte, headerLen+len(body))
	copy(out, cur.header[:])
	copy(out[headerLen:], body)
	c.putWriter(w)
	return out, nil
}

// AppendEncode is Encode appending to dst, for callers that reuse buffers; the body
// is copied once, from hamba's pooled writer into dst. On error dst is returned as is.
func (c *Catalog) AppendEncode(dst []byte, v any) ([]byte, error) {
	dst, _, err := c.AppendEncodeNamed(dst, v)
	return dst, err
}

// AppendEncodeNamed is AppendEncode that also returns the full name of v's schema,
// the value of a "type" header, without reading it back from the header. The name
// is shared by every call for that schema: the caller must not modify it.
func (c *Catalog) AppendEncodeNamed(dst []byte, v any) (out, name []byte, err error) {
	cur, w, err := c.encodeBody(v)
	if err != nil {
		return dst, nil, err
	}
	dst = append(dst, cur.header[:]...)
	dst = append(dst, w.Buffer()...)
	c.putWriter(w)
	return dst, cur.nameBytes, nil
}

// encodeBody writes v's body into a pooled writer, which the caller must put back.
func (c *Catalog) encodeBody(v any) (*currentSchema, *avro.Writer, error) {
	cur, ok := c.byGoType[reflect.TypeOf(v)]
	if !ok {
		return nil, nil, fmt.Errorf("codec: encode: %T is not a generated record type", v)
	}
	if reflect.TypeOf(v) == cur.typ.ptr && reflect.ValueOf(v).IsNil() {
		return nil, nil, fmt.Errorf("codec: encode %s: nil %T", cur.name, v)
	}
	w := c.writerP.Get().(*avro.Writer)
	w.Reset(nil)
	w.Error = nil
	w.WriteVal(cur.schema, v)
	err := w.Error
	if n := len(w.Buffer()); err == nil && !(cur.lenBounded && n <= c.maxBytes && n <= c.maxSliceElems) {
		// Refuse what a catalog with the same limits would refuse to read.
		err = validate(cur.plan, w.Buffer(), c.maxBytes, c.maxSliceElems)
	}
	if err != nil {
		c.putWriter(w)
		return nil, nil, fmt.Errorf("codec: encode %s: %w", cur.name, err)
	}
	return cur, w, nil
}

func (c *Catalog) putWriter(w *avro.Writer) {
	if cap(w.Buffer()) > pooledBufMax {
		return
	}
	w.Reset(nil)
	w.Error = nil
	c.writerP.Put(w)
}

// Decode decodes a single-object-encoded record into a new value of the generated
// type of the writer's full name (for example *OpenAccount), resolving an older writer
// schema to the current one: fields the writer lacked get their defaults. Decoded
// arrays are never nil, and decoded values share no memory with data.
//
// Errors: ErrMalformed (header, body or limits; a *DecodeError once the writer schema
// is known) or ErrUnknownSchema (an *UnknownSchemaError).
func (c *Catalog) Decode(data []byte) (any, error) {
	ws, body, err := c.lookup(data)
	if err != nil {
		return nil, err
	}
	if err := validate(ws.plan, body, c.maxBytes, c.maxSliceElems); err != nil {
		return nil, &DecodeError{Name: ws.name, Err: err}
	}
	v := ws.typ.new()
	if err := c.read(ws, body, v); err != nil {
		return nil, err
	}
	return v, nil
}

// DecodeInto is Decode into v, which must be a non-nil pointer to the generated type
// of the writer's full name; otherwise it returns an error matching ErrTypeMismatch.
// v is reset first; after any error its content is unspecified.
func (c *Catalog) DecodeInto(data []byte, v any) error {
	ws, body, err := c.lookup(data)
	if err != nil {
		return err
	}
	if reflect.TypeOf(v) != ws.typ.ptr {
		return fmt.Errorf("%w: record is %s (%v), got %T", ErrTypeMismatch, ws.name, ws.typ.ptr, v)
	}
	rv := reflect.ValueOf(v)
	if rv.IsNil() {
		return fmt.Errorf("%w: nil %T", ErrTypeMismatch, v)
	}
	if err := validate(ws.plan, body, c.maxBytes, c.maxSliceElems); err != nil {
		return &DecodeError{Name: ws.name, Err: err}
	}
	rv.Elem().SetZero()
	return c.read(ws, body, v)
}

// Name returns the full Avro name of the record's writer schema, reading only the
// header, so routers can dispatch without decoding. Errors as for Decode.
func (c *Catalog) Name(data []byte) (string, error) {
	ws, _, err := c.lookup(data)
	if err != nil {
		return "", err
	}
	return ws.name, nil
}

// Schema returns the current schema of a full name.
func (c *Catalog) Schema(fullName string) (avro.Schema, bool) {
	cur, ok := c.current[fullName]
	if !ok {
		return nil, false
	}
	return cur.schema, true
}

// Fingerprint returns the 8 header bytes under which records of a full name are
// written: CRC-64-AVRO of the current schema's Parsing Canonical Form, little-endian.
func (c *Catalog) Fingerprint(fullName string) ([8]byte, bool) {
	cur, ok := c.current[fullName]
	if !ok {
		return [8]byte{}, false
	}
	return [8]byte(cur.header[2:]), true
}

// LegacyFingerprint returns the fingerprint records of a full name carried
// before the ledger followed the specification (see legacyFingerprint);
// they stay readable for ever.
func (c *Catalog) LegacyFingerprint(fullName string) ([8]byte, bool) {
	cur, ok := c.current[fullName]
	if !ok {
		return [8]byte{}, false
	}
	fp, err := legacyFingerprint(cur.schema)
	return fp, err == nil
}

// Names returns the sorted full names of the current schemas; the slice is the
// caller's.
func (c *Catalog) Names() []string { return slices.Clone(c.names) }

func (c *Catalog) lookup(data []byte) (*writerSchema, []byte, error) {
	fp, body, err := soe.ParseHeader(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	key := [8]byte(fp)
	ws, ok := c.writers[key]
	if !ok {
		return nil, nil, &UnknownSchemaError{Fingerprint: key}
	}
	return ws, body, nil
}

// read decodes an already validated body into v with hamba.
func (c *Catalog) read(ws *writerSchema, body []byte, v any) error {
	r := c.readers.Get().(*avro.Reader)
	r.Reset(body)
	r.Error = nil
	r.ReadVal(ws.read, v)
	err := r.Error
	if err == nil {
		// validate proved the body ends where the schema ends; make sure hamba agrees
		// (Peek at the end sets io.EOF, anything else means bytes were left over).
		r.Peek()
		if r.Error != io.EOF {
			err = errors.New("decoder stopped before the end of the body")
		}
	}
	r.Reset(nil) // do not pin data in the pool
	r.Error = nil
	c.readers.Put(r)
	if err != nil {
		return &DecodeError{Name: ws.name, Err: err}
	}
	return nil
}

package codec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// IsConfluent reports whether a value is in the Confluent Schema Registry
// wire format: a zero byte, the 4-byte big-endian schema id, the Avro body.
// (Single-object encoding starts with C3 01, so the two never collide.)
func IsConfluent(value []byte) bool { return len(value) >= 5 && value[0] == 0 }

// ConfluentID returns the schema id of a Confluent-framed value.
func ConfluentID(value []byte) (int, bool) {
	if !IsConfluent(value) {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(value[1:5])), true
}

// Registry reads records in the Confluent wire format through a
// Confluent-compatible schema registry (Confluent Schema Registry, Apicurio's
// ccompat API, Karapace, …): a schema id is looked up once, its schema's
// fingerprint (Parsing Canonical Form) must be one the catalog knows, and the
// value is then rewritten to single-object encoding, so that everything
// downstream reads one format. It is safe for concurrent use.
type Registry struct {
	cat *Catalog
	cl  *sr.Client
	url string

	mu      sync.Mutex
	ids     map[int]registryEntry
	failing time.Time // since when the registry could not be asked; zero when it answers
}

type registryEntry struct {
	fp  [8]byte
	err error // permanent: the id is unknown, or its schema is not a ledger schema
}

// NewRegistry returns a Registry for the registry at url; hc may be nil.
func NewRegistry(cat *Catalog, url string, hc *http.Client) (*Registry, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	cl, err := sr.NewClient(sr.URLs(url), sr.HTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("schema registry %s: %w", url, err)
	}
	return &Registry{cat: cat, cl: cl, url: url, ids: map[int]registryEntry{}}, nil
}

// ErrRegistryUnavailable wraps a failure to ask the registry (network,
// timeout, 5xx): the records that need it cannot be read yet, but may be
// later, so they must be retried, never dead-lettered.
var ErrRegistryUnavailable = errors.New("schema registry unavailable")

// Resolve looks up the schema ids of the Confluent-framed values among
// values that it has not resolved yet. An error matches ErrRegistryUnavailable;
// an id the registry does not know, or whose schema is not a released ledger
// schema, is remembered as such and fails SingleObject.
func (r *Registry) Resolve(ctx context.Context, values ...[]byte) error {
	var want []int
	r.mu.Lock()
	for _, v := range values {
		if id, ok := ConfluentID(v); ok {
			if _, known := r.ids[id]; !known {
				want = append(want, id)
			}
		}
	}
	r.mu.Unlock()
	for _, id := range want {
		e, err := r.lookup(ctx, id)
		r.mu.Lock()
		if err != nil {
			if r.failing.IsZero() {
				r.failing = time.Now()
			}
			r.mu.Unlock()
			return fmt.Errorf("%w: schema id %d at %s: %v", ErrRegistryUnavailable, id, r.url, err)
		}
		r.failing = time.Time{}
		r.ids[id] = e
		r.mu.Unlock()
	}
	return nil
}

// lookup asks the registry for one id. The error return is for transient
// failures only.
func (r *Registry) lookup(ctx context.Context, id int) (registryEntry, error) {
	s, err := r.cl.SchemaByID(ctx, id)
	var re *sr.ResponseError
	switch {
	case errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500:
		return registryEntry{err: fmt.Errorf("schema id %d: the registry answered %d: %s", id, re.StatusCode, re.Error())}, nil
	case err != nil:
		return registryEntry{}, err
	case s.Type != sr.TypeAvro:
		return registryEntry{err: fmt.Errorf("schema id %d is a %s schema, not Avro", id, s.Type)}, nil
	case len(s.References) > 0:
		return registryEntry{err: fmt.Errorf("schema id %d has references; the ledger's schemas are self-contained", id)}, nil
	}
	_, name, fp, err := parseSchema([]byte(s.Schema))
	if err != nil {
		return registryEntry{err: fmt.Errorf("schema id %d: %w", id, err)}, nil
	}
	if _, known := r.cat.writers[fp]; !known {
		return registryEntry{err: fmt.Errorf("schema id %d (%s, fingerprint %x) is not a released version of a ledger schema (schemas/history)", id, name, fp)}, nil
	}
	return registryEntry{fp: fp}, nil
}

// SingleObject rewrites a Confluent-framed value whose id Resolve looked up
// into single-object encoding (a new slice).
func (r *Registry) SingleObject(value []byte) ([]byte, error) {
	id, ok := ConfluentID(value)
	if !ok {
		return nil, fmt.Errorf("%w: not in the Confluent wire format", ErrMalformed)
	}
	r.mu.Lock()
	e, known := r.ids[id]
	r.mu.Unlock()
	switch {
	case !known:
		return nil, fmt.Errorf("schema id %d was not resolved", id)
	case e.err != nil:
		return nil, e.err
	}
	out := make([]byte, 0, headerLen+len(value)-5)
	out = append(out, 0xc3, 0x01)
	out = append(out, e.fp[:]...)
	return append(out, value[5:]...), nil
}

// FailingSince is when the registry stopped answering; zero while it answers.
func (r *Registry) FailingSince() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failing
}

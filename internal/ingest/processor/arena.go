package processor

import "github.com/twmb/franz-go/pkg/kgo"

// Chunk sizes of an arena.
const (
	arenaRecords = 128
	arenaHeaders = 3 * arenaRecords
	arenaBytes   = 16 << 10
	// arenaSlack is the room left in a byte chunk below which a new chunk
	// is started before encoding a value, so that values rarely outgrow
	// their chunk (one that does is copied by append, which stays correct).
	arenaSlack = 512
)

// arena hands out the memory of the records one part of a batch writes:
// the records, their headers, keys and values come from a few large chunks
// instead of several small allocations per record. Everything it hands out
// is referenced until the batch's transaction ends, so nothing is held
// longer than without it. Not safe for concurrent use: each part has its
// own.
type arena struct {
	recs  []kgo.Record
	hdrs  []kgo.RecordHeader
	bytes []byte
}

// record returns a zeroed record.
func (a *arena) record() *kgo.Record {
	if len(a.recs) == cap(a.recs) {
		a.recs = make([]kgo.Record, 0, arenaRecords)
	}
	a.recs = a.recs[:len(a.recs)+1]
	return &a.recs[len(a.recs)-1]
}

// headers returns an empty header slice with room for n headers.
func (a *arena) headers(n int) []kgo.RecordHeader {
	if cap(a.hdrs)-len(a.hdrs) < n {
		a.hdrs = make([]kgo.RecordHeader, 0, max(arenaHeaders, n))
	}
	start := len(a.hdrs)
	a.hdrs = a.hdrs[:start+n]
	return a.hdrs[start : start : start+n]
}

// buf returns the free tail of the byte chunk to append one value to; done
// takes the result back.
func (a *arena) buf() []byte {
	if cap(a.bytes)-len(a.bytes) < arenaSlack {
		a.bytes = make([]byte, 0, arenaBytes)
	}
	return a.bytes[len(a.bytes):]
}

// done claims what was appended to the slice buf returned and returns it
// with its capacity clipped, so that later values never overwrite it.
func (a *arena) done(b []byte) []byte {
	if len(b) > 0 && cap(b) == cap(a.bytes)-len(a.bytes) {
		a.bytes = a.bytes[:len(a.bytes)+len(b)]
	} // else append moved b to its own array: the chunk is untouched
	return b[:len(b):len(b)]
}

// copyBytes returns a copy of s in the arena.
func (a *arena) copyBytes(s string) []byte {
	return a.done(append(a.buf(), s...))
}

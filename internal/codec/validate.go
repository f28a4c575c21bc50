package codec

import (
	"errors"
	"fmt"
	"math"

	"github.com/hamba/avro/v2"
)

// Why a separate validation pass: hamba/avro v2.31.0 trusts its input more than a
// consumer of a shared Kafka topic can afford to.
//   - api.Unmarshal treats any error wrapping io.EOF as success, so a truncated body
//     (even an empty one) "decodes" into zero values.
//   - A negative array block count of math.MinInt64 stays negative after negation;
//     the array decoder then sets a negative slice length and, with a following
//     block, writes elements outside the slice's backing array.
//   - A string or array length is allocated before the bytes behind it are read, so a
//     10-byte record can demand MaxByteSliceSize bytes or MaxSliceAllocSize elements.
//
// validate walks the body with the writer schema first, without allocating, and
// rejects all of that: every length must fit in the remaining bytes, every array or
// map block must be able to hold its claimed elements, indexes must be in range and
// the body must end exactly where the schema ends. Only then does hamba decode, so the
// memory a record can cost is bounded by a small multiple of its own size. It costs
// one extra pass over bytes that are already in cache (see BenchmarkValidate).

type kind uint8

const (
	kNull kind = iota
	kBoolean
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kString
	kRecord
	kEnum
	kArray
	kMap
	kUnion
	kFixed
)

// plan is a writer schema compiled for validation.
type plan struct {
	kind     kind
	name     string  // full name of named types, for error messages
	fields   []*plan // record fields, in writer order
	elem     *plan   // array items, map values
	branches []*plan // union branches
	n        int     // enum symbol count, fixed size
	min      int     // fewest bytes any value of this schema encodes to
}

// maxDepth bounds nesting during validation. Only recursive schemas can nest deeper
// than their own definition; ours are not recursive, so this only stops hostile input
// against a (future) recursive schema from growing the stack without bound.
const maxDepth = 64

func compilePlan(s avro.Schema) (*plan, error) {
	c := planCompiler{named: map[string]*plan{}, sizing: map[*plan]bool{}}
	p, err := c.compile(s)
	if err != nil {
		return nil, err
	}
	c.size(p)
	return p, nil
}

type planCompiler struct {
	named  map[string]*plan // named types, so recursive schemas compile to a cycle
	sizing map[*plan]bool   // true while computing min, false when done
}

func (c *planCompiler) compile(s avro.Schema) (*plan, error) {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if ns, ok := s.(avro.NamedSchema); ok {
		if p, ok := c.named[ns.FullName()]; ok {
			return p, nil
		}
	}
	switch s := s.(type) {
	case *avro.NullSchema:
		return &plan{kind: kNull}, nil
	case *avro.PrimitiveSchema:
		// Logical types (timestamp-millis, decimal on bytes, …) share their
		// underlying type's encoding.
		switch s.Type() {
		case avro.Boolean:
			return &plan{kind: kBoolean}, nil
		case avro.Int:
			return &plan{kind: kInt}, nil
		case avro.Long:
			return &plan{kind: kLong}, nil
		case avro.Float:
			return &plan{kind: kFloat}, nil
		case avro.Double:
			return &plan{kind: kDouble}, nil
		case avro.Bytes:
			return &plan{kind: kBytes}, nil
		case avro.String:
			return &plan{kind: kString}, nil
		}
	case *avro.RecordSchema:
		p := &plan{kind: kRecord, name: s.FullName()}
		c.named[p.name] = p
		for _, f := range s.Fields() {
			fp, err := c.compile(f.Type())
			if err != nil {
				return nil, err
			}
			p.fields = append(p.fields, fp)
		}
		return p, nil
	case *avro.EnumSchema:
		p := &plan{kind: kEnum, name: s.FullName(), n: len(s.Symbols())}
		c.named[p.name] = p
		return p, nil
	case *avro.FixedSchema:
		p := &plan{kind: kFixed, name: s.FullName(), n: s.Size()}
		c.named[p.name] = p
		return p, nil
	case *avro.ArraySchema:
		e, err := c.compile(s.Items())
		return &plan{kind: kArray, elem: e}, err
	case *avro.MapSchema:
		e, err := c.compile(s.Values())
		return &plan{kind: kMap, elem: e}, err
	case *avro.UnionSchema:
		p := &plan{kind: kUnion}
		for _, t := range s.Types() {
			b, err := c.compile(t)
			if err != nil {
				return nil, err
			}
			p.branches = append(p.branches, b)
		}
		return p, nil
	}
	return nil, fmt.Errorf("codec: unsupported schema type %s", s.Type())
}

// lenBounded reports whether every body of the plan's schema that is no longer
// than both limits is within them, so that Encode may skip validating what hamba
// wrote when the body is that short: a string or bytes value cannot be longer than
// the body, an array or map cannot have more elements than the body has bytes when
// each element takes at least one, and a schema that is not recursive cannot nest
// deeper than its own definition. onPath holds the named types being visited.
func lenBounded(p *plan, depth int, onPath map[*plan]bool) bool {
	if depth > maxDepth || onPath[p] {
		return false // too deep, or recursive
	}
	onPath[p] = true
	defer delete(onPath, p)
	switch p.kind {
	case kRecord:
		for _, f := range p.fields {
			if !lenBounded(f, depth+1, onPath) {
				return false
			}
		}
	case kUnion:
		for _, b := range p.branches {
			if !lenBounded(b, depth+1, onPath) {
				return false
			}
		}
	case kArray:
		return p.elem.min > 0 && lenBounded(p.elem, depth+1, onPath)
	case kMap: // each entry has a key of at least one byte
		return lenBounded(p.elem, depth+1, onPath)
	}
	return true
}

// size fills in min. A type that is still being sized (recursion) counts as 0, which
// keeps min a lower bound.
func (c *planCompiler) size(p *plan) int {
	if busy, seen := c.sizing[p]; seen {
		if busy {
			return 0
		}
		return p.min
	}
	c.sizing[p] = true
	switch p.kind {
	case kNull:
		p.min = 0
	case kFloat:
		p.min = 4
	case kDouble:
		p.min = 8
	case kFixed:
		p.min = p.n
	case kRecord:
		p.min = 0
		for _, f := range p.fields {
			p.min += c.size(f)
		}
	case kUnion:
		least := -1
		for _, b := range p.branches {
			if m := c.size(b); least < 0 || m < least {
				least = m
			}
		}
		p.min = 1 + max(least, 0)
	case kArray, kMap:
		c.size(p.elem)
		p.min = 1 // the terminating zero block count
	default: // boolean, int, long, bytes, string, enum: at least one byte
		p.min = 1
	}
	c.sizing[p] = false
	return p.min
}

// validator checks one body; it lives on the stack and allocates nothing on success.
type validator struct {
	b             []byte
	pos           int
	maxBytes      int
	maxSliceElems int
}

var errTruncated = errors.New("truncated body")

// mapKeyPlan validates map keys, which Avro encodes as strings.
var mapKeyPlan = &plan{kind: kString, min: 1}

// validate returns nil if body is exactly one value of the plan's writer schema
// within the limits.
func validate(p *plan, body []byte, maxBytes, maxSliceElems int) error {
	v := validator{b: body, maxBytes: maxBytes, maxSliceElems: maxSliceElems}
	if err := v.value(p, 0); err != nil {
		return err
	}
	if rest := len(body) - v.pos; rest != 0 {
		return fmt.Errorf("%d trailing bytes after the body", rest)
	}
	return nil
}

// varint reads an Avro zig-zag varint of at most maxLen bytes, the way hamba's
// Reader does (bits beyond 64 are dropped), so both agree on every value.
func (v *validator) varint(maxLen int) (uint64, error) {
	var x uint64
	var s uint
	for i := 0; i < maxLen; i++ {
		if v.pos >= len(v.b) {
			return 0, errTruncated
		}
		c := v.b[v.pos]
		v.pos++
		x |= uint64(c&0x7f) << s
		if c&0x80 == 0 {
			return x, nil
		}
		s += 7
	}
	return 0, fmt.Errorf("varint longer than %d bytes at offset %d", maxLen, v.pos)
}

func (v *validator) long() (int64, error) {
	x, err := v.varint(10)
	return int64((x >> 1) ^ -(x & 1)), err
}

func (v *validator) int() (int32, error) {
	x, err := v.varint(5)
	u := uint32(x)
	return int32((u >> 1) ^ -(u & 1)), err
}

func (v *validator) skip(n int) error {
	if n > len(v.b)-v.pos {
		return errTruncated
	}
	v.pos += n
	return nil
}

func (v *validator) value(p *plan, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	switch p.kind {
	case kNull:
		return nil
	case kBoolean:
		if v.pos >= len(v.b) {
			return errTruncated
		}
		if v.b[v.pos] > 1 {
			return fmt.Errorf("invalid boolean 0x%02x at offset %d", v.b[v.pos], v.pos)
		}
		v.pos++
		return nil
	case kInt:
		_, err := v.int()
		return err
	case kLong:
		_, err := v.long()
		return err
	case kFloat:
		return v.skip(4)
	case kDouble:
		return v.skip(8)
	case kFixed:
		return v.skip(p.n)
	case kBytes, kString:
		at := v.pos
		n, err := v.long()
		if err != nil {
			return err
		}
		switch {
		case n < 0:
			return fmt.Errorf("negative length %d at offset %d", n, at)
		case n > int64(v.maxBytes):
			return fmt.Errorf("length %d at offset %d exceeds the limit of %d bytes", n, at, v.maxBytes)
		case n > int64(len(v.b)-v.pos):
			return fmt.Errorf("length %d at offset %d exceeds the %d bytes left: %w", n, at, len(v.b)-v.pos, errTruncated)
		}
		v.pos += int(n)
		return nil
	case kEnum:
		at := v.pos
		i, err := v.int()
		if err != nil {
			return err
		}
		if i < 0 || int(i) >= p.n {
			return fmt.Errorf("enum %s index %d at offset %d out of range", p.name, i, at)
		}
		return nil
	case kUnion:
		at := v.pos
		i, err := v.int()
		if err != nil {
			return err
		}
		if i < 0 || int(i) >= len(p.branches) {
			return fmt.Errorf("union index %d at offset %d out of range", i, at)
		}
		return v.value(p.branches[i], depth+1)
	case kRecord:
		for _, f := range p.fields {
			if err := v.value(f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case kArray, kMap:
		return v.blocks(p, depth)
	}
	return fmt.Errorf("unsupported kind %d", p.kind)
}

// blocks validates the blocks of an array or map. Counts are cumulative per value,
// like hamba's MaxSliceAllocSize check, and each block must be able to hold its
// claimed count (count × minimum element size ≤ bytes left), which is what bounds the
// allocation hamba makes up front for the block.
func (v *validator) blocks(p *plan, depth int) error {
	elemMin := p.elem.min
	if p.kind == kMap {
		elemMin++ // the key: a string, at least its length byte
	}
	total := 0
	for {
		at := v.pos
		count, err := v.long()
		if err != nil {
			return err
		}
		if count == 0 {
			return nil
		}
		blockSize := int64(-1)
		if count < 0 {
			if count == math.MinInt64 {
				return fmt.Errorf("invalid block count %d at offset %d", count, at)
			}
			count = -count
			if blockSize, err = v.long(); err != nil {
				return err
			}
			if blockSize < 0 || blockSize > int64(len(v.b)-v.pos) {
				return fmt.Errorf("invalid block size %d at offset %d", blockSize, at)
			}
		}
		if count > int64(v.maxSliceElems-total) {
			return fmt.Errorf("block at offset %d brings the element count over the limit of %d", at, v.maxSliceElems)
		}
		if elemMin > 0 && count > int64((len(v.b)-v.pos)/elemMin) {
			return fmt.Errorf("block at offset %d claims %d elements but only %d bytes are left: %w", at, count, len(v.b)-v.pos, errTruncated)
		}
		total += int(count)
		start := v.pos
		for range count {
			if p.kind == kMap {
				if err := v.value(mapKeyPlan, depth+1); err != nil {
					return err
				}
			}
			if err := v.value(p.elem, depth+1); err != nil {
				return err
			}
		}
		if blockSize >= 0 && int64(v.pos-start) != blockSize {
			return fmt.Errorf("block at offset %d declares %d bytes but holds %d", at, blockSize, v.pos-start)
		}
	}
}

package kafkax

// Murmur2 is the 32-bit murmur2 hash Kafka's default partitioner applies to
// record keys (Java's Utils.murmur2, seed 0x9747b28c), the same function
// franz-go's StickyKeyPartitioner uses by default.
func Murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// KeyPartition returns the partition, out of n (> 0), that Kafka's default
// partitioner (Java clients, franz-go's StickyKeyPartitioner) picks for a
// non-nil key: the murmur2 hash with the sign bit cleared, modulo n. Every
// aggregate-keyed topic is co-partitioned on it, so producers in any language
// agree on where an aggregate lives.
func KeyPartition(key []byte, n int32) int32 {
	return int32(Murmur2(key)&0x7fffffff) % n
}

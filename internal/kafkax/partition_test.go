package kafkax_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// TestKeyPartitionMatchesKgo pins KeyPartition to franz-go's default key
// partitioner (which mirrors the Java client) over a few hundred keys of
// every length remainder and several partition counts.
func TestKeyPartitionMatchesKgo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var keys [][]byte
	for i := 0; i < 300; i++ {
		keys = append(keys, []byte(fmt.Sprintf("acc-%d", i)))
	}
	for i := 0; i < 100; i++ {
		b := make([]byte, rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		keys = append(keys, b)
	}
	keys = append(keys, []byte{})
	for _, n := range []int{1, 3, 7, 12, 100} {
		tp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
		for _, k := range keys {
			want := tp.Partition(&kgo.Record{Key: k}, n)
			if got := kafkax.KeyPartition(k, int32(n)); int(got) != want {
				t.Fatalf("KeyPartition(%q, %d) = %d, kgo says %d", k, n, got, want)
			}
		}
	}
}

// TestMurmur2KnownValues pins values from the Java client's tests
// (org.apache.kafka.common.utils.UtilsTest#testMurmur2).
func TestMurmur2KnownValues(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(kafkax.Murmur2([]byte(c.in))); got != c.want {
			t.Errorf("Murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

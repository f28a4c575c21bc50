package kafkax

import "github.com/twmb/franz-go/pkg/kgo"

// Header returns the value of r's last header named key; ok is false when
// it has none.
func Header(r *kgo.Record, key string) (value []byte, ok bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value, true
		}
	}
	return nil, false
}

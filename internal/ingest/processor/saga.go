package processor

import (
	"crypto/hmac"
	"crypto/sha256"

	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderOriginMAC on a saga command is HMAC-SHA256, under the processors'
// shared saga key (Config.SagaKey), of the record's key, a zero byte and
// its value. With a key configured, a record is a saga command only when
// it carries HeaderOrigin=OriginProcessor and this MAC: the header alone
// is what any producer allowed to write the commands topic can forge, the
// MAC only a holder of the key. See doc.go.
const HeaderOriginMAC = "origin-mac"

// MinSagaKeyBytes is the shortest saga key accepted.
const MinSagaKeyBytes = 32

// sagaMAC is the HeaderOriginMAC of a record with key and value.
func sagaMAC(secret, key, value []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(key)
	m.Write([]byte{0})
	m.Write(value)
	return m.Sum(nil)
}

// signedBy reports whether r carries a valid HeaderOriginMAC under secret;
// without a secret (the library default, for tests and trusted
// single-tenant brokers) the origin header alone is trusted.
func signedBy(secret []byte, r *kgo.Record) bool {
	if len(secret) == 0 {
		return true
	}
	for _, h := range r.Headers {
		if h.Key == HeaderOriginMAC {
			return hmac.Equal(h.Value, sagaMAC(secret, r.Key, r.Value))
		}
	}
	return false
}

// Package kafkax is the franz-go plumbing shared by the binaries: clients built
// from configuration, topic names, and helpers for transactional work. It knows
// nothing of ledger rules.
package kafkax

import (
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// FetchMaxWait bounds every consumer's fetch long poll. A fetch returns as
// soon as records arrive, so the bound only matters after an assignment: a
// partition that joins while a fetch for the others is in flight (franz-go
// has one per broker) sits idle until that fetch's wait ends, 5 s with
// franz-go's default (a restarted projector waited 5.0–5.1 s for its first
// write in BenchmarkRecovery). Idle, it is two fetches a second.
const FetchMaxWait = 500 * time.Millisecond

// ClientOpts turns the connection settings into franz-go options: seed
// brokers, client id, TLS, SASL and FetchMaxWait. Callers add their role's
// options (later ones override these).
func ClientOpts(cfg config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.BrokerList()...),
		kgo.ClientID(cfg.ClientID),
		kgo.FetchMaxWait(FetchMaxWait),
	}
	if cfg.TLS {
		tc, err := config.TLSConfig(cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := saslMechanism(cfg); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func saslMechanism(cfg config.Kafka) sasl.Mechanism {
	auth := scram.Auth{User: cfg.SASLUser, Pass: cfg.SASLPassword}
	switch strings.ToUpper(cfg.SASLMechanism) {
	case "PLAIN":
		return plain.Auth{User: cfg.SASLUser, Pass: cfg.SASLPassword}.AsMechanism()
	case "SCRAM-SHA-256":
		return auth.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		return auth.AsSha512Mechanism()
	}
	return nil
}

// NewClient builds a client from the connection settings plus extra options.
func NewClient(cfg config.Kafka, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := ClientOpts(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

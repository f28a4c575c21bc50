// Package kafkax is the franz-go plumbing shared by the binaries: clients built
// from configuration, topic names, and helpers for transactional work. It knows
// nothing of ledger rules.
package kafkax

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// ClientOpts turns the connection settings into franz-go options: seed
// brokers, client id, TLS and SASL. Callers add their role's options.
func ClientOpts(cfg config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.BrokerList()...),
		kgo.ClientID(cfg.ClientID),
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

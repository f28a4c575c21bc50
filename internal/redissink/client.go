// Package redissink is the Redis storage adapter: the client built from
// configuration, the projection writers and the readers for queries.
package redissink

import (
	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// NewClient builds a go-redis client from the configuration (AUTH, TLS, DB).
func NewClient(cfg config.Redis) (*redis.Client, error) {
	opts := &redis.Options{
		Addr:     cfg.Addr,
		Username: cfg.Username,
		Password: cfg.Password,
		DB:       cfg.DB,
	}
	if cfg.TLS {
		tc, err := config.TLSConfig(cfg.TLSCAFile, "", "")
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = tc
	}
	return redis.NewClient(opts), nil
}

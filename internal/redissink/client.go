// Package redissink is the Redis storage adapter: the client built from
// configuration, the projection writers and the readers for queries.
package redissink

import (
	"crypto/tls"

	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// NewClient builds a go-redis client from the configuration (AUTH, TLS,
// DB): a cluster client over the seed addresses when cfg.Cluster is set,
// else a client of one server.
func NewClient(cfg config.Redis) (redis.UniversalClient, error) {
	var tc *tls.Config
	if cfg.TLS {
		var err error
		if tc, err = config.TLSConfig(cfg.TLSCAFile, "", ""); err != nil {
			return nil, err
		}
	}
	if cfg.Cluster {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cfg.AddrList(), Username: cfg.Username, Password: cfg.Password, TLSConfig: tc,
		}), nil
	}
	return redis.NewClient(&redis.Options{
		Addr: cfg.Addr, Username: cfg.Username, Password: cfg.Password, DB: cfg.DB, TLSConfig: tc,
	}), nil
}

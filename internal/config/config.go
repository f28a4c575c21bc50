// Package config holds the settings shared by the binaries: how to reach Kafka,
// Redis and ClickHouse and how to serve HTTP. Each setting is a flag with an
// environment-variable twin (flag "kafka-brokers" ↔ KAFKA_BROKERS); defaults
// point at the local stack started by scripts/stack. Validate reports every
// problem at once so a bad configuration fails at start with the full list.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// Parse fills fs from args, then from environment variables for flags not
// given on the command line.
func Parse(fs *flag.FlagSet, args []string) error {
	return ff.Parse(fs, args, ff.WithEnvVars())
}

// Kafka is how to reach the cluster and name the topics.
type Kafka struct {
	Brokers       string // comma-separated host:port list
	TopicPrefix   string // prepended to every topic name, e.g. "ledger."
	ClientID      string
	TLS           bool
	TLSCAFile     string
	TLSCertFile   string
	TLSKeyFile    string
	SASLMechanism string // "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	SASLUser      string
	SASLPassword  string
}

// DefaultTopicPrefix is the topic name prefix when none is configured.
const DefaultTopicPrefix = "ledger."

// RegisterFlags declares the Kafka flags on fs with their defaults.
func (k *Kafka) RegisterFlags(fs *flag.FlagSet, clientID string) {
	fs.StringVar(&k.Brokers, "kafka-brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated (KAFKA_BROKERS)")
	fs.StringVar(&k.TopicPrefix, "topic-prefix", DefaultTopicPrefix, "prefix of every topic name (TOPIC_PREFIX)")
	fs.StringVar(&k.ClientID, "kafka-client-id", clientID, "Kafka client id (KAFKA_CLIENT_ID)")
	fs.BoolVar(&k.TLS, "kafka-tls", false, "connect to Kafka over TLS (KAFKA_TLS)")
	fs.StringVar(&k.TLSCAFile, "kafka-tls-ca", "", "PEM file of CAs to trust for Kafka TLS; system roots if empty (KAFKA_TLS_CA)")
	fs.StringVar(&k.TLSCertFile, "kafka-tls-cert", "", "PEM client certificate for Kafka mTLS (KAFKA_TLS_CERT)")
	fs.StringVar(&k.TLSKeyFile, "kafka-tls-key", "", "PEM client key for Kafka mTLS (KAFKA_TLS_KEY)")
	fs.StringVar(&k.SASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (KAFKA_SASL_MECHANISM)")
	fs.StringVar(&k.SASLUser, "kafka-sasl-user", "", "SASL user name (KAFKA_SASL_USER)")
	SecretFlags(fs, &k.SASLPassword, "kafka-sasl-password", "SASL password", "KAFKA_SASL_PASSWORD")
}

// SecretFlags declares a secret's two flags: name (its value) and
// name-file (a file holding it, e.g. a Docker secret, without its trailing
// newline), which wins whatever order they are given in.
func SecretFlags(fs *flag.FlagSet, dst *string, name, what, env string) {
	fromFile := false
	fs.Func(name, what+" ("+env+")", func(v string) error {
		if !fromFile {
			*dst = v
		}
		return nil
	})
	fs.Func(name+"-file", "a file holding the "+what+"; wins over "+name+" ("+env+"_FILE)", func(path string) error {
		if path == "" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		*dst, fromFile = strings.TrimRight(string(b), "\r\n"), true
		return nil
	})
}

// BrokerList returns the brokers as a slice, without empty entries.
func (k Kafka) BrokerList() []string { return splitList(k.Brokers) }

var topicPrefixRE = regexp.MustCompile(`^[a-zA-Z0-9._-]*$`)

// Validate reports every problem with k.
func (k Kafka) Validate() error {
	var errs []error
	errs = append(errs, validateAddrs("kafka-brokers", k.BrokerList())...)
	if !topicPrefixRE.MatchString(k.TopicPrefix) || len(k.TopicPrefix) > 100 {
		errs = append(errs, fmt.Errorf("topic-prefix %q: only letters, digits, '.', '_' and '-', at most 100 characters", k.TopicPrefix))
	}
	switch strings.ToUpper(k.SASLMechanism) {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if k.SASLUser == "" {
			errs = append(errs, errors.New("kafka-sasl-user is required with kafka-sasl-mechanism"))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka-sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASLMechanism))
	}
	errs = append(errs, validateTLSFiles("kafka-tls", k.TLSCAFile, k.TLSCertFile, k.TLSKeyFile)...)
	return errors.Join(errs...)
}

// Redis is how to reach Redis.
type Redis struct {
	Addr      string // host:port; with Cluster, comma-separated seed nodes
	Cluster   bool   // Redis Cluster: a cluster client (keys hash-tagged per aggregate)
	Username  string
	Password  string
	DB        int
	TLS       bool
	TLSCAFile string
	KeyPrefix string // namespaces every key, e.g. "ledger:"
	// WaitReplicas: the projector's write batches wait (WAIT) until this
	// many replicas of each master have them.
	WaitReplicas int
}

// AddrList returns the Redis addresses as a slice.
func (r Redis) AddrList() []string { return splitList(r.Addr) }

// RegisterFlags declares the Redis flags on fs with their defaults.
func (r *Redis) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&r.Addr, "redis-addr", "127.0.0.1:6379", "Redis host:port; with redis-cluster, seed nodes, comma-separated (REDIS_ADDR)")
	fs.BoolVar(&r.Cluster, "redis-cluster", false, "Redis Cluster: a cluster client over the seed nodes of redis-addr (REDIS_CLUSTER)")
	fs.StringVar(&r.Username, "redis-username", "", "Redis ACL user (REDIS_USERNAME)")
	SecretFlags(fs, &r.Password, "redis-password", "Redis AUTH password", "REDIS_PASSWORD")
	fs.IntVar(&r.DB, "redis-db", 0, "Redis database number; must be 0 on Redis Cluster (REDIS_DB)")
	fs.BoolVar(&r.TLS, "redis-tls", false, "connect to Redis over TLS (REDIS_TLS)")
	fs.StringVar(&r.TLSCAFile, "redis-tls-ca", "", "PEM file of CAs to trust for Redis TLS (REDIS_TLS_CA)")
	fs.StringVar(&r.KeyPrefix, "redis-key-prefix", "ledger:", "prefix of every Redis key (REDIS_KEY_PREFIX)")
	fs.IntVar(&r.WaitReplicas, "redis-wait-replicas", 0, "replicas of each master that must have a write batch before the projector commits its offsets (WAIT); with replicas, 1 keeps a failover from losing acknowledged writes (REDIS_WAIT_REPLICAS)")
}

// Validate reports every problem with r.
func (r Redis) Validate() error {
	addrs := []string{r.Addr}
	if r.Cluster {
		addrs = r.AddrList()
	}
	errs := validateAddrs("redis-addr", addrs)
	if r.DB < 0 || r.DB > 15 {
		errs = append(errs, fmt.Errorf("redis-db %d: want 0..15", r.DB))
	}
	if r.WaitReplicas < 0 {
		errs = append(errs, fmt.Errorf("redis-wait-replicas %d: want ≥ 0", r.WaitReplicas))
	}
	if r.Cluster && r.DB != 0 {
		errs = append(errs, fmt.Errorf("redis-db %d: Redis Cluster has database 0 only", r.DB))
	}
	errs = append(errs, validateTLSFiles("redis-tls", r.TLSCAFile, "", "")...)
	return errors.Join(errs...)
}

// ClickHouse is how to reach ClickHouse.
type ClickHouse struct {
	Addr     string // comma-separated host:port list (native protocol)
	Database string
	Username string
	Password string
	TLS      bool
	Cluster  string // when set, DDL runs ON CLUSTER with Replicated engines
	// InsertQuorum: with Cluster, the replicas of a shard that must have
	// each INSERT before it succeeds.
	InsertQuorum int
}

// RegisterFlags declares the ClickHouse flags on fs with their defaults.
func (c *ClickHouse) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "clickhouse-addr", "127.0.0.1:9000", "ClickHouse native host:port list, comma-separated (CLICKHOUSE_ADDR)")
	fs.StringVar(&c.Database, "clickhouse-database", "ledger", "ClickHouse database (CLICKHOUSE_DATABASE)")
	fs.StringVar(&c.Username, "clickhouse-username", "default", "ClickHouse user (CLICKHOUSE_USERNAME)")
	SecretFlags(fs, &c.Password, "clickhouse-password", "ClickHouse password", "CLICKHOUSE_PASSWORD")
	fs.BoolVar(&c.TLS, "clickhouse-tls", false, "connect to ClickHouse over TLS (CLICKHOUSE_TLS)")
	fs.StringVar(&c.Cluster, "clickhouse-cluster", "", "cluster name for ON CLUSTER DDL, Replicated engines and Distributed tables; empty for one server (CLICKHOUSE_CLUSTER)")
	fs.IntVar(&c.InsertQuorum, "clickhouse-insert-quorum", 1, "with clickhouse-cluster: replicas of a shard that must have each INSERT before it succeeds; 1 for none (a timed-out quorum INSERT loses its hourly-volume rows: see docs/scale-out.md) (CLICKHOUSE_INSERT_QUORUM)")
}

// AddrList returns the addresses as a slice.
func (c ClickHouse) AddrList() []string { return splitList(c.Addr) }

var identRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate reports every problem with c.
func (c ClickHouse) Validate() error {
	errs := validateAddrs("clickhouse-addr", c.AddrList())
	if !identRE.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse-database %q: want an identifier ([a-zA-Z_][a-zA-Z0-9_]*)", c.Database))
	}
	if c.Cluster != "" && !identRE.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse-cluster %q: want an identifier", c.Cluster))
	}
	if c.InsertQuorum < 1 {
		errs = append(errs, fmt.Errorf("clickhouse-insert-quorum %d: want ≥ 1 (1: no quorum)", c.InsertQuorum))
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func validateAddrs(name string, addrs []string) []error {
	if len(addrs) == 0 {
		return []error{fmt.Errorf("%s: at least one host:port is required", name)}
	}
	var errs []error
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", name, a))
		}
	}
	return errs
}

func validateTLSFiles(name, ca, cert, key string) []error {
	var errs []error
	for _, f := range []struct{ flag, path string }{{name + "-ca", ca}, {name + "-cert", cert}, {name + "-key", key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.flag, err))
		}
	}
	if (cert == "") != (key == "") {
		errs = append(errs, fmt.Errorf("%s-cert and %s-key go together", name, name))
	}
	return errs
}

// TLSConfig builds a client TLS configuration from PEM files; ca empty means
// the system roots, cert and key empty means no client certificate.
func TLSConfig(ca, cert, key string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates", ca)
		}
		cfg.RootCAs = pool
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Command produce-avro shows how an upstream system writes ledger commands
// straight to Kafka, without the HTTP gateway: it opens an account and
// deposits into it. See docs/producing-commands.md for the contract.
//
//	go run ./examples/produce-avro -brokers 127.0.0.1:9092 -topic-prefix ledger. -account acc-42
//
// Every record on the commands topic is
//
//	key     the aggregate (account) id, UTF-8 bytes
//	value   Avro single-object encoding: C3 01, the 8-byte little-endian
//	        CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form,
//	        then the Avro binary body
//	header  "type" = the schema's full name, e.g. ledger.commands.OpenAccount
//
// and is partitioned by Kafka's default partitioner (murmur2 of the key), so
// all commands of one account stay in order on one partition.
//
// It prints one JSON line per produced record.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cqrs-ledger/ledger/schemas"
)

// The Go shapes of the two schemas, field for field (schemas/open_account.avsc
// and schemas/deposit_funds.avsc). A nil ExpectedVersion is Avro null: no
// optimistic-concurrency check.
type openAccount struct {
	CommandID       string    `avro:"command_id"`
	AggregateID     string    `avro:"aggregate_id"`
	ExpectedVersion *int64    `avro:"expected_version"`
	CorrelationID   string    `avro:"correlation_id"`
	IssuedAt        time.Time `avro:"issued_at"` // timestamp-millis
	Owner           string    `avro:"owner"`
	Currency        string    `avro:"currency"`
	OverdraftLimit  int64     `avro:"overdraft_limit"`
}

type depositFunds struct {
	CommandID       string    `avro:"command_id"`
	AggregateID     string    `avro:"aggregate_id"`
	ExpectedVersion *int64    `avro:"expected_version"`
	CorrelationID   string    `avro:"correlation_id"`
	IssuedAt        time.Time `avro:"issued_at"`
	Amount          int64     `avro:"amount"` // minor units (cents), > 0
	Reference       string    `avro:"reference"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "produce-avro:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	prefix := flag.String("topic-prefix", "ledger.", "topic name prefix; commands go to <prefix>commands")
	account := flag.String("account", "acc-"+uuid.NewString()[:8], "account id to open and deposit into")
	owner := flag.String("owner", "Ada Lovelace", "owner of the new account")
	currency := flag.String("currency", "EUR", "ISO-4217 currency of the new account")
	amount := flag.Int64("amount", 10_000, "deposit in minor units (cents)")
	caFile := flag.String("tls-ca", "", "PEM file of the CA that signed the brokers' certificates; connects over TLS when set")
	user := flag.String("sasl-user", "", "SCRAM-SHA-512 user (an upstream producer may write commands only); the password is read from KAFKA_SASL_PASSWORD")
	flag.Parse()

	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.DefaultProduceTopic(*prefix + "commands"),
		// Kafka's default: murmur2 of the key, like the Java client. (This is
		// also franz-go's behaviour for keyed records, but say it.)
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		// franz-go producers are idempotent by default (acks=all), so a
		// retried send never duplicates or reorders records of a partition.
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no PEM certificate", *caFile)
		}
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	if *user != "" {
		opts = append(opts, kgo.SASL(scram.Auth{User: *user, Pass: os.Getenv("KAFKA_SASL_PASSWORD")}.AsSha512Mechanism()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	now := time.Now().UTC().Truncate(time.Millisecond)
	correlation := uuid.NewString()
	commands := []struct {
		schemaFile string
		value      any
	}{
		{"open_account.avsc", &openAccount{
			CommandID: uuid.NewString(), AggregateID: *account, CorrelationID: correlation, IssuedAt: now,
			Owner: *owner, Currency: *currency,
		}},
		{"deposit_funds.avsc", &depositFunds{
			CommandID: uuid.NewString(), AggregateID: *account, CorrelationID: correlation, IssuedAt: now,
			Amount: *amount, Reference: "produce-avro example",
		}},
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := json.NewEncoder(os.Stdout)
	for _, c := range commands {
		rec, err := record(c.schemaFile, *account, c.value)
		if err != nil {
			return err
		}
		// One at a time for the example; a real producer would Produce
		// asynchronously. Records with one key keep their order either way.
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		_ = out.Encode(map[string]any{
			"type":       string(rec.Headers[0].Value),
			"command_id": commandID(c.value),
			"key":        string(rec.Key),
			"topic":      rec.Topic,
			"partition":  rec.Partition,
			"offset":     rec.Offset,
		})
	}
	return nil
}

// record encodes v with the schema in schemas/<file> and wraps it as a
// commands-topic record.
func record(file, key string, v any) (*kgo.Record, error) {
	avsc, err := fs.ReadFile(schemas.FS, file)
	if err != nil {
		return nil, err
	}
	schema, err := avro.Parse(string(avsc))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	body, err := avro.Marshal(schema, v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", file, err)
	}

	// Single-object encoding, by hand so that every step is visible. The
	// fingerprint is of the schema's Parsing Canonical Form (Avro
	// specification), which Java's BinaryMessageEncoder and fastavro write
	// too. hamba/avro's schema.String() and its soe package keep
	// "logicalType" attributes, which that form strips, so the canonical
	// form is taken from a copy of the schema parsed without them.
	pcf, err := parsingCanonicalForm(avsc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	value := make([]byte, 10, 10+len(body))
	value[0], value[1] = 0xC3, 0x01
	binary.LittleEndian.PutUint64(value[2:], crc64Avro([]byte(pcf)))
	value = append(value, body...)

	return &kgo.Record{
		Key:     []byte(key),
		Value:   value,
		Headers: []kgo.RecordHeader{{Key: "type", Value: []byte(schema.(avro.NamedSchema).FullName())}},
	}, nil
}

// parsingCanonicalForm returns the Avro specification's Parsing Canonical
// Form of the schema in avsc: hamba/avro's canonical form of the schema
// without its logicalType attributes.
func parsingCanonicalForm(avsc []byte) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(avsc))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	var strip func(any)
	strip = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			delete(x, "logicalType")
			for _, e := range x {
				strip(e)
			}
		case []any:
			for _, e := range x {
				strip(e)
			}
		}
	}
	strip(v)
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	s, err := avro.ParseBytesWithCache(plain, "", &avro.SchemaCache{})
	if err != nil {
		return "", err
	}
	return s.String(), nil
}

// crc64Avro is the Rabin fingerprint the Avro specification calls
// CRC-64-AVRO, of a schema's Parsing Canonical Form.
func crc64Avro(data []byte) uint64 {
	const empty = 0xc15d213aa4d7a795
	var table [256]uint64
	for i := range table {
		fp := uint64(i)
		for range 8 {
			fp = (fp >> 1) ^ (empty & -(fp & 1))
		}
		table[i] = fp
	}
	fp := uint64(empty)
	for _, b := range data {
		fp = (fp >> 8) ^ table[byte(fp)^b]
	}
	return fp
}

func commandID(v any) string {
	switch c := v.(type) {
	case *openAccount:
		return c.CommandID
	case *depositFunds:
		return c.CommandID
	}
	return ""
}

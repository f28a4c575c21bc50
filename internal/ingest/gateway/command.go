package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
)

// Error codes of the HTTP API (the "error" member of an error body).
const (
	CodeInvalidCommand   = "invalid_command"   // 400: not an accepted command shape
	CodeInvalidJSON      = "invalid_json"      // 400: not JSON at all
	CodeInvalidWait      = "invalid_wait"      // 400: bad ?wait=
	CodeBodyTooLarge     = "body_too_large"    // 413
	CodeBatchTooLarge    = "batch_too_large"   // 400: more items than MaxBatch
	CodeKafkaUnavailable = "kafka_unavailable" // 503: the command could not be produced
)

// FieldError is a command the gateway refuses before producing it. Code is
// CodeInvalidCommand, or CodeInvalidJSON when the input is not JSON; Field
// names the JSON field at fault ("" when the problem is not one field, e.g.
// the item is not an object).
type FieldError struct {
	Code    string
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Code: CodeInvalidCommand, Field: field, Message: fmt.Sprintf(format, args...)}
}

// command is a validated command, ready to produce.
type command struct {
	typ         string // Avro full name, the value of the record's "type" header
	commandID   string
	aggregateID string
	record      any // *codec.OpenAccount, ...
}

func (c *command) short() string { return strings.TrimPrefix(c.typ, commandsNamespace) }

// fieldKind is how a JSON field is read.
type fieldKind int

const (
	kindString      fieldKind = iota // any string, "" allowed
	kindID                           // a non-blank string
	kindCurrency                     // ^[A-Z]{3}$
	kindAmount                       // an exact integer > 0
	kindNonNegative                  // an exact integer >= 0
)

type fieldSpec struct {
	name     string
	kind     fieldKind
	required bool
}

// commandSpec is the JSON shape of one upstream command type, beyond the
// envelope fields every type accepts (type, command_id, expected_version,
// correlation_id).
type commandSpec struct {
	fullName string
	fields   []fieldSpec
	// accountAliases: the aggregate may be named account_id or aggregate_id
	// (they must agree when both are present). False for TransferFunds,
	// whose aggregate is from_account_id (aggregate_id, if present, must
	// equal it).
	accountAliases bool
	build          func(env envelope, f fields) any
}

// envelope is what every command carries.
type envelope struct {
	commandID       string
	aggregateID     string
	expectedVersion *int64
	correlationID   string
	issuedAt        time.Time
}

// fields are the parsed type-specific values by JSON name.
type fields struct {
	s map[string]string
	n map[string]int64
}

var specs = map[string]*commandSpec{
	"OpenAccount": {
		fullName:       domain.TypeOpenAccount,
		accountAliases: true,
		fields: []fieldSpec{
			{"owner", kindID, true},
			{"currency", kindCurrency, true},
			{"overdraft_limit", kindNonNegative, false},
		},
		build: func(e envelope, f fields) any {
			return &codec.OpenAccount{
				CommandID: e.commandID, AggregateID: e.aggregateID, ExpectedVersion: e.expectedVersion,
				CorrelationID: e.correlationID, IssuedAt: e.issuedAt,
				Owner: f.s["owner"], Currency: f.s["currency"], OverdraftLimit: f.n["overdraft_limit"],
			}
		},
	},
	"DepositFunds": {
		fullName:       domain.TypeDepositFunds,
		accountAliases: true,
		fields: []fieldSpec{
			{"amount", kindAmount, true},
			{"reference", kindString, false},
		},
		build: func(e envelope, f fields) any {
			return &codec.DepositFunds{
				CommandID: e.commandID, AggregateID: e.aggregateID, ExpectedVersion: e.expectedVersion,
				CorrelationID: e.correlationID, IssuedAt: e.issuedAt,
				Amount: f.n["amount"], Reference: f.s["reference"],
			}
		},
	},
	"WithdrawFunds": {
		fullName:       domain.TypeWithdrawFunds,
		accountAliases: true,
		fields: []fieldSpec{
			{"amount", kindAmount, true},
			{"reference", kindString, false},
		},
		build: func(e envelope, f fields) any {
			return &codec.WithdrawFunds{
				CommandID: e.commandID, AggregateID: e.aggregateID, ExpectedVersion: e.expectedVersion,
				CorrelationID: e.correlationID, IssuedAt: e.issuedAt,
				Amount: f.n["amount"], Reference: f.s["reference"],
			}
		},
	},
	"TransferFunds": {
		fullName: domain.TypeTransferFunds,
		fields: []fieldSpec{
			{"transfer_id", kindID, true},
			{"from_account_id", kindID, true},
			{"to_account_id", kindID, true},
			{"amount", kindAmount, true},
			{"reference", kindString, false},
		},
		build: func(e envelope, f fields) any {
			return &codec.TransferFunds{
				CommandID: e.commandID, AggregateID: e.aggregateID, ExpectedVersion: e.expectedVersion,
				CorrelationID: e.correlationID, IssuedAt: e.issuedAt,
				TransferID: f.s["transfer_id"], FromAccountID: f.s["from_account_id"], ToAccountID: f.s["to_account_id"],
				Amount: f.n["amount"], Reference: f.s["reference"],
			}
		},
	},
	"CloseAccount": {
		fullName:       domain.TypeCloseAccount,
		accountAliases: true,
		build: func(e envelope, _ fields) any {
			return &codec.CloseAccount{
				CommandID: e.commandID, AggregateID: e.aggregateID, ExpectedVersion: e.expectedVersion,
				CorrelationID: e.correlationID, IssuedAt: e.issuedAt,
			}
		},
	},
}

// internalTypes are saga commands only the processor may issue: accepting
// one from outside would let a client create money.
var internalTypes = map[string]bool{
	"CreditTransfer": true, domain.TypeCreditTransfer: true,
	"RefundTransfer": true, domain.TypeRefundTransfer: true,
}

const commandsNamespace = "ledger.commands."

// envelopeFields are accepted by every type.
var envelopeFields = map[string]bool{
	"type": true, "command_id": true, "expected_version": true, "correlation_id": true,
}

// parseCommand validates one JSON command and builds its Avro record. A
// missing command_id is filled with a random UUID; issued_at is now,
// truncated to milliseconds (the precision of timestamp-millis).
func parseCommand(data []byte, now time.Time) (*command, *FieldError) {
	data = bytes.TrimSpace(data)
	if !json.Valid(data) {
		var err error
		if len(data) == 0 {
			err = errors.New("empty input")
		} else {
			err = json.Unmarshal(data, new(any))
		}
		return nil, &FieldError{Code: CodeInvalidJSON, Message: "invalid JSON: " + err.Error()}
	}
	if data[0] != '{' {
		return nil, fieldErr("", "a command must be a JSON object")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, &FieldError{Code: CodeInvalidJSON, Message: "invalid JSON: " + err.Error()}
	}

	typeName, ferr := stringField(obj, "type", true)
	if ferr != nil {
		return nil, ferr
	}
	short := strings.TrimPrefix(typeName, commandsNamespace)
	if internalTypes[typeName] {
		return nil, fieldErr("type", "%s is an internal saga command and cannot be submitted", short)
	}
	spec, ok := specs[short]
	if !ok {
		return nil, fieldErr("type", "unknown command type %q; want one of OpenAccount, DepositFunds, WithdrawFunds, TransferFunds, CloseAccount", domain.Clip(typeName))
	}

	// Unknown fields first, in a stable order, so a typo is reported as
	// such rather than as the required field it was meant to be.
	allowed := func(name string) bool {
		if envelopeFields[name] || name == "aggregate_id" {
			return true
		}
		if spec.accountAliases && name == "account_id" {
			return true
		}
		for _, f := range spec.fields {
			if f.name == name {
				return true
			}
		}
		return false
	}
	names := make([]string, 0, len(obj))
	for name := range obj {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !allowed(name) {
			return nil, fieldErr(name, "unknown field for %s", short)
		}
	}

	var env envelope
	if env.commandID, ferr = stringField(obj, "command_id", false); ferr != nil {
		return nil, ferr
	}
	if env.commandID != "" {
		if strings.TrimSpace(env.commandID) == "" {
			return nil, fieldErr("command_id", "must not be blank")
		}
		if b := domain.CheckID("command_id", env.commandID); b != nil {
			return nil, fieldErr(b.Field, "%s", b.Message)
		}
		if domain.ReservedCommandID(env.commandID) {
			return nil, fieldErr("command_id", "%s", domain.ReservedCommandIDMessage(env.commandID))
		}
	} else if _, present := obj["command_id"]; present && !isNull(obj["command_id"]) {
		return nil, fieldErr("command_id", "must not be empty; omit it to have one assigned")
	} else {
		env.commandID = uuid.NewString()
	}
	if env.correlationID, ferr = stringField(obj, "correlation_id", false); ferr != nil {
		return nil, ferr
	}
	if env.correlationID != "" {
		if b := domain.CheckID("correlation_id", env.correlationID); b != nil {
			return nil, fieldErr(b.Field, "%s", b.Message)
		}
	}
	if raw, ok := obj["expected_version"]; ok && !isNull(raw) {
		v, ferr := intField("expected_version", raw)
		if ferr != nil {
			return nil, ferr
		}
		if v < 0 {
			return nil, fieldErr("expected_version", "must be >= 0, got %d", v)
		}
		env.expectedVersion = &v
	}
	env.issuedAt = now.UTC().Truncate(time.Millisecond)

	f := fields{s: map[string]string{}, n: map[string]int64{}}
	for _, fs := range spec.fields {
		raw, present := obj[fs.name]
		if !present || isNull(raw) {
			if fs.required {
				return nil, fieldErr(fs.name, "is required")
			}
			continue
		}
		switch fs.kind {
		case kindString, kindID, kindCurrency:
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fieldErr(fs.name, "must be a string")
			}
			if fs.kind == kindID && strings.TrimSpace(s) == "" {
				return nil, fieldErr(fs.name, "must not be empty")
			}
			if fs.kind == kindCurrency && !domain.ValidCurrency(s) {
				return nil, fieldErr(fs.name, "must be an ISO-4217 code of three upper-case letters, got %q", domain.Clip(s))
			}
			if b := textBounds(fs, s); b != nil {
				return nil, fieldErr(b.Field, "%s", b.Message)
			}
			f.s[fs.name] = s
		case kindAmount, kindNonNegative:
			v, ferr := intField(fs.name, raw)
			if ferr != nil {
				return nil, ferr
			}
			if fs.kind == kindAmount && v <= 0 {
				return nil, fieldErr(fs.name, "must be > 0 (minor units), got %d", v)
			}
			if fs.kind == kindNonNegative && v < 0 {
				return nil, fieldErr(fs.name, "must be >= 0 (minor units), got %d", v)
			}
			if b := domain.CheckMoney(fs.name, v); b != nil {
				return nil, fieldErr(b.Field, "%s", b.Message)
			}
			f.n[fs.name] = v
		}
	}

	if spec.accountAliases {
		acc, ferr := stringField(obj, "account_id", false)
		if ferr != nil {
			return nil, ferr
		}
		agg, ferr := stringField(obj, "aggregate_id", false)
		if ferr != nil {
			return nil, ferr
		}
		switch {
		case acc != "" && agg != "" && acc != agg:
			return nil, fieldErr("aggregate_id", "differs from account_id; give one of them")
		case acc != "":
			env.aggregateID = acc
		default:
			env.aggregateID = agg
		}
		if strings.TrimSpace(env.aggregateID) == "" {
			return nil, fieldErr("account_id", "is required")
		}
		if b := domain.CheckID("account_id", env.aggregateID); b != nil {
			return nil, fieldErr(b.Field, "%s", b.Message)
		}
	} else {
		env.aggregateID = f.s["from_account_id"]
		agg, ferr := stringField(obj, "aggregate_id", false)
		if ferr != nil {
			return nil, ferr
		}
		if agg != "" && agg != env.aggregateID {
			return nil, fieldErr("aggregate_id", "must equal from_account_id (a transfer is handled by its source); omit it")
		}
	}

	return &command{
		typ:         spec.fullName,
		commandID:   env.commandID,
		aggregateID: env.aggregateID,
		record:      spec.build(env, f),
	}, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// stringField reads an optional or required string; null counts as absent.
func stringField(obj map[string]json.RawMessage, name string, required bool) (string, *FieldError) {
	raw, ok := obj[name]
	if !ok || isNull(raw) {
		if required {
			return "", fieldErr(name, "is required")
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fieldErr(name, "must be a string")
	}
	if required && strings.TrimSpace(s) == "" {
		return "", fieldErr(name, "must not be empty")
	}
	return s, nil
}

// textBounds applies the domain's input bounds to a string field: owner and
// reference are free text, every other id-like field an id.
func textBounds(fs fieldSpec, s string) *domain.BoundsError {
	switch {
	case fs.name == "owner":
		return domain.CheckText(fs.name, s, domain.MaxOwnerBytes)
	case fs.name == "reference":
		return domain.CheckText(fs.name, s, domain.MaxReferenceBytes)
	case fs.kind == kindID:
		return domain.CheckID(fs.name, s)
	}
	return nil
}

// maxNumberBytes bounds the text of a JSON number that is parsed at all:
// math/big's exact parse of a long fraction costs time and memory in its
// length (a 1 MB fraction took about a second of CPU).
const maxNumberBytes = 64

// maxExponent bounds the exponent of a JSON number before it reaches
// math/big, so that 1e999999999 costs nothing.
const maxExponent = 40

// intField reads a JSON number that is an exact int64: 100 and 1e3 are
// accepted, 1.5, 1e-1, "100" and 1e19 are not.
func intField(name string, raw json.RawMessage) (int64, *FieldError) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return 0, fieldErr(name, "must be an integer (a JSON number, not a string)")
	}
	if len(s) > maxNumberBytes {
		return 0, fieldErr(name, "is a %d-character number; at most %d characters", len(s), maxNumberBytes)
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	} else if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return 0, fieldErr(name, "is out of range (a 64-bit integer)")
	}
	// A fraction or an exponent: accept it only if it is an exact integer.
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || exp > maxExponent || exp < -maxExponent {
			return 0, fieldErr(name, "is out of range (a 64-bit integer)")
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fieldErr(name, "must be an integer")
	}
	if !r.IsInt() {
		return 0, fieldErr(name, "must be a whole number of minor units, got %s", domain.Clip(s))
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fieldErr(name, "is out of range (a 64-bit integer)")
	}
	return n.Int64(), nil
}

package codec

import (
	"fmt"
	"reflect"

	"github.com/hamba/avro/v2"
)

// record is what every generated top-level type has: its own (current) schema.
type record interface {
	Schema() avro.Schema
}

// goType ties a full Avro name to the generated Go type that holds its records.
type goType struct {
	name  string
	ptr   reflect.Type // *T, the type Decode returns and DecodeInto accepts
	value reflect.Type // T, also accepted by Encode
	new   func() any   // returns a fresh *T
}

// typeOf derives the table entry from the generated type itself, so the full name is
// never typed by hand: it comes from the schema avrogen embedded in types_gen.go.
func typeOf[T any, PT interface {
	*T
	record
}]() *goType {
	s, ok := PT(new(T)).Schema().(avro.NamedSchema)
	if !ok {
		panic(fmt.Sprintf("codec: %T.Schema() is not a named schema", PT(nil)))
	}
	return &goType{
		name:  s.FullName(),
		ptr:   reflect.TypeFor[PT](),
		value: reflect.TypeFor[T](),
		new:   func() any { return PT(new(T)) },
	}
}

// generatedTypes lists the generated type of every top-level schema in schemas/
// (nested records such as EventRef are not listed: they never travel on their own).
// TestGoTypesMatchSchemas fails if a schema lacks an entry here, if an entry has no
// schema, or if types_gen.go declares a record type that is neither listed nor nested,
// so this list cannot silently drift from schemas/.
//
// It is filled in init, not as a package variable: typeOf calls Schema() through a type
// parameter, which Go's initialization order does not see as a dependency on the
// schema variables in types_gen.go.
var generatedTypes []*goType

// typesByName indexes generatedTypes by full name; read-only after init.
var typesByName = map[string]*goType{}

func init() {
	generatedTypes = []*goType{
		// ledger.commands
		typeOf[OpenAccount](),
		typeOf[DepositFunds](),
		typeOf[WithdrawFunds](),
		typeOf[TransferFunds](),
		typeOf[CreditTransfer](),
		typeOf[RefundTransfer](),
		typeOf[CloseAccount](),
		// ledger.events
		typeOf[AccountOpened](),
		typeOf[FundsDeposited](),
		typeOf[FundsWithdrawn](),
		typeOf[TransferDebited](),
		typeOf[TransferCredited](),
		typeOf[TransferRefunded](),
		typeOf[AccountClosed](),
		// ledger.snapshots, ledger.results
		typeOf[AccountSnapshot](),
		typeOf[CommandResult](),
	}
	for _, t := range generatedTypes {
		if _, dup := typesByName[t.name]; dup {
			panic("codec: two generated types for " + t.name)
		}
		typesByName[t.name] = t
	}
}

// NewValue returns a pointer to a new zero value of the generated type for fullName
// (for example *OpenAccount for "ledger.commands.OpenAccount"), or false if no
// generated type has that name. Callers use it to decode into a type chosen at run time.
func NewValue(fullName string) (any, bool) {
	t, ok := typesByName[fullName]
	if !ok {
		return nil, false
	}
	return t.new(), true
}

// The symbols of the schemas' enums, which the generated types carry as
// strings (TestEnumSymbols keeps them in step with schemas/).
const (
	// CommandResult.Status (ledger.results.CommandStatus).
	StatusAccepted = "ACCEPTED"
	StatusRejected = "REJECTED"
	// AccountSnapshot.Status (ledger.snapshots.AccountStatus).
	AccountStatusOpen   = "OPEN"
	AccountStatusClosed = "CLOSED"
)

package projection_test

import (
	"testing"

	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
)

func TestMemoryContract(t *testing.T) {
	projectiontest.Run(t, func(*testing.T) projection.View { return projection.NewMemory() })
}

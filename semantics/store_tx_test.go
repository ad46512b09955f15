package semantics

import (
	"context"
	"testing"
)

// memTx and fileTx stand for the transaction types of two stores.
type (
	memTx  struct{ n int }
	fileTx struct{ n int }
)

func TestTxOfFindsOnlyTheStoresOwnTransactionType(t *testing.T) {
	bolt := &fileTx{n: 2}
	mem := &memTx{n: 1}
	tests := []struct {
		name     string
		ctx      context.Context
		wantBolt *fileTx
		wantMem  *memTx
	}{
		{"no transaction", context.Background(), nil, nil},
		{"one store's transaction", ContextWithTx(context.Background(), bolt), bolt, nil},
		{"another store's transaction", ContextWithTx(context.Background(), mem), nil, mem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, okB := TxOf[*fileTx](tt.ctx)
			m, okM := TxOf[*memTx](tt.ctx)
			if b != tt.wantBolt || okB != (tt.wantBolt != nil) {
				t.Errorf("TxOf[*fileTx] = %p, %v; want %p", b, okB, tt.wantBolt)
			}
			if m != tt.wantMem || okM != (tt.wantMem != nil) {
				t.Errorf("TxOf[*memTx] = %p, %v; want %p", m, okM, tt.wantMem)
			}
		})
	}
}

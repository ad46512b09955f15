package semantics

import (
	"context"
	"testing"

	"go.etcd.io/bbolt"
)

// memTx stands for the transaction type of a store other than bbolt.
type memTx struct{ n int }

func TestTxOfFindsOnlyTheStoresOwnTransactionType(t *testing.T) {
	bolt := new(bbolt.Tx) // never used as a transaction here
	mem := &memTx{n: 1}
	tests := []struct {
		name     string
		ctx      context.Context
		wantBolt *bbolt.Tx
		wantMem  *memTx
	}{
		{"no transaction", context.Background(), nil, nil},
		{"bolt transaction", ContextWithTx(context.Background(), bolt), bolt, nil},
		{"another store's transaction", ContextWithTx(context.Background(), mem), nil, mem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, okB := TxOf[*bbolt.Tx](tt.ctx)
			m, okM := TxOf[*memTx](tt.ctx)
			if b != tt.wantBolt || okB != (tt.wantBolt != nil) {
				t.Errorf("TxOf[*bbolt.Tx] = %p, %v; want %p", b, okB, tt.wantBolt)
			}
			if m != tt.wantMem || okM != (tt.wantMem != nil) {
				t.Errorf("TxOf[*memTx] = %p, %v; want %p", m, okM, tt.wantMem)
			}
			if got := TxFrom(tt.ctx); got != tt.wantBolt {
				t.Errorf("TxFrom = %p, want %p", got, tt.wantBolt)
			}
		})
	}
}

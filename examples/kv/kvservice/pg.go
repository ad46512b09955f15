package kvservice

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/semrpc/semrpc/stores/pgstore"
)

// pgTable holds the keys of a KV on PostgreSQL, beside the store's tables.
const pgTable = `CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text NOT NULL)`

// pgSetupLock is the advisory lock under which servers create pgTable:
// CREATE TABLE IF NOT EXISTS is not safe against itself in PostgreSQL, so
// that of servers starting together on a new database, all but one would
// fail with "type "kv" already exists" without it.
const pgSetupLock = 0x6b7673657276 // "kvserv"

// NewPostgres returns a KV whose data lives in st's database, beside the
// completion records: serve it with rpc.WithDurableStore(st), and each
// write commits its effect and its completion record in one transaction.
// Any number of servers may serve the same database: they form one
// exactly-once domain (see pgstore). Data already there is kept.
func NewPostgres(ctx context.Context, st *pgstore.Store) (*KV, error) {
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(pgSetupLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, pgTable)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kvservice: creating table: %w", err)
	}
	return &KV{pg: st}, nil
}

// pgTx returns the call's transaction.
func pgTx(ctx context.Context) (pgx.Tx, error) {
	tx := pgstore.TxOf(ctx)
	if tx == nil {
		return nil, errors.New("kvservice: not in a store transaction (serve with rpc.WithDurableStore)")
	}
	return tx, nil
}

func pgGet(ctx context.Context, args GetArgs, reply *GetReply) error {
	tx, err := pgTx(ctx)
	if err != nil {
		return err
	}
	err = tx.QueryRow(ctx, "SELECT v FROM kv WHERE k = $1", args.Key).Scan(&reply.Value)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	reply.Found = true
	return nil
}

func pgPut(ctx context.Context, args PutArgs) error {
	tx, err := pgTx(ctx)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v", args.Key, args.Value)
	return err
}

// pgAppend appends in one statement, so that concurrent appends to a key
// (on any server) queue on its row: the value returned is the one this
// append extended.
func pgAppend(ctx context.Context, args AppendArgs, reply *AppendReply) error {
	tx, err := pgTx(ctx)
	if err != nil {
		return err
	}
	var v string
	err = tx.QueryRow(ctx, "INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = kv.v || EXCLUDED.v RETURNING v",
		args.Key, args.Value).Scan(&v)
	if err != nil {
		return err
	}
	if len(v) < len(args.Value) {
		return fmt.Errorf("kvservice: append to %q: the database returned a value shorter than the appended one", args.Key)
	}
	reply.Old = v[:len(v)-len(args.Value)]
	return nil
}

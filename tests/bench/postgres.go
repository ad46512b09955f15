package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	stdrpc "net/rpc"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/semrpc/semrpc/internal/pgtest"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/pgstore"
)

// Group and case names of the PostgreSQL comparison.
const (
	GroupPgSequential = "PostgreSQL exactly-once, sequential"
	GroupPgCallers    = "PostgreSQL exactly-once, 64 callers"

	CasePgHandWritten = "net/rpc + hand-written idempotency key (INSERT ... ON CONFLICT DO NOTHING)"
	CasePgStore       = "semrpc ExactlyOnce (pgstore)"
	CasePgNoBatch     = "semrpc ExactlyOnce (pgstore, NoBatch)"
)

// pgGroups compares exactly-once calls whose records live in PostgreSQL
// (one durable server, fsync on, started by the benchmark) with the loop a
// user would write by hand on the same database, and with bbolt. Each call
// writes one row of the service's own (bbolt's calls write only their
// records).
func pgGroups() []Group {
	group := func(name string, clients int, drive func(*testing.B, *Server)) Group {
		run := func(start func(testing.TB, int) *Server) func(*testing.B) {
			return func(b *testing.B) {
				s := start(b, clients)
				defer s.Stop()
				drive(b, s)
			}
		}
		return Group{Name: name, Baseline: 0, Cases: []Case{
			{CasePgHandWritten, run(StartHandWrittenPg)},
			{CasePgStore, run(func(tb testing.TB, n int) *Server { return StartPgExactlyOnce(tb, n, false) })},
			{CasePgNoBatch, run(func(tb testing.TB, n int) *Server { return StartPgExactlyOnce(tb, n, true) })},
			{CaseExactlyOnce, run(StartExactlyOnceClients)},
		}}
	}
	return []Group{
		group(GroupPgSequential, 1, Sequential),
		group(GroupPgCallers, 64, func(b *testing.B, s *Server) { Parallel(b, s, 64) }),
	}
}

// The benchmarks' PostgreSQL server, started at the first case that needs
// it, durable (fsync and synchronous commit on), one database per kind of
// case.
var (
	pgMu     sync.Mutex // protects pgServer and pgURLs
	pgServer *pgtest.Server
	pgURLs   = map[string]string{}
)

// pgDatabase returns the URL of the benchmarks' database for kind, starting
// the server and creating the database on first use.
func pgDatabase(tb testing.TB, kind string) string {
	pgMu.Lock()
	defer pgMu.Unlock()
	if pgServer == nil {
		s, err := pgtest.Start(&pgtest.Options{Durable: true})
		if err != nil {
			tb.Fatalf("bench: %v (%s)", err, pgtest.InstallHint)
		}
		pgServer = s
	}
	if url, ok := pgURLs[kind]; ok {
		return url
	}
	url, err := pgServer.CreateDatabase(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Exec(context.Background(), `
		CREATE TABLE effects (id bigserial PRIMARY KEY, v bigint NOT NULL);
		CREATE TABLE idem (key text PRIMARY KEY, reply bigint);`)
	if err != nil {
		tb.Fatal(err)
	}
	pgURLs[kind] = url
	return url
}

// StopPostgres stops the benchmarks' PostgreSQL server, if one was
// started, and removes its files.
func StopPostgres() {
	pgMu.Lock()
	defer pgMu.Unlock()
	if pgServer != nil {
		pgServer.Stop()
		pgServer, pgURLs = nil, map[string]string{}
	}
}

// PgArith is Arith on a PostgreSQL store: Add inserts the sum into the
// service's table in the call's transaction.
type PgArith struct{}

// Add inserts a+b into effects and replies with it.
func (PgArith) Add(ctx context.Context, args Args, reply *int) error {
	tx := pgstore.TxOf(ctx)
	if tx == nil {
		return errors.New("bench: not in a store transaction")
	}
	*reply = args.A + args.B
	_, err := tx.Exec(ctx, "INSERT INTO effects (v) VALUES ($1)", *reply)
	return err
}

// StartPgExactlyOnce serves PgArith on a pgstore with n exactly-once
// clients.
func StartPgExactlyOnce(tb testing.TB, n int, noBatch bool) *Server {
	st, err := pgstore.Open(context.Background(), pgDatabase(tb, "pgstore"), &pgstore.Config{NoBatch: noBatch})
	if err != nil {
		tb.Fatal(err)
	}
	srv := newSemrpcServer(rpc.WithDurableStore(st))
	if err := srv.RegisterName("Arith", PgArith{}); err != nil {
		tb.Fatal(err)
	}
	s := serveSemrpc(tb, srv, semantics.ExactlyOnce(), n)
	stop := s.stop
	s.stop = func() {
		stop()
		st.Close()
	}
	return s
}

// IdemArgs are the hand-written service's arguments: the client's
// idempotency key with the call's.
type IdemArgs struct {
	Key string
	Args
}

// Idem is the exactly-once service a user would write without semrpc, on
// the same database: one transaction per call that inserts the key
// (INSERT ... ON CONFLICT DO NOTHING; a duplicate waits on the key's row
// lock, then reads the reply stored with it), makes the effect, and
// stores the reply beside the key.
type Idem struct{ pool *pgxpool.Pool }

// Add is Arith.Add made idempotent by args.Key.
func (s *Idem) Add(args IdemArgs, reply *int) error {
	ctx := context.Background()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, "INSERT INTO idem (key) VALUES ($1) ON CONFLICT (key) DO NOTHING", args.Key)
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 0 { // a duplicate: the stored reply
			var r int64
			if err := tx.QueryRow(ctx, "SELECT reply FROM idem WHERE key = $1", args.Key).Scan(&r); err != nil {
				return err
			}
			*reply = int(r)
			return nil
		}
		*reply = args.A + args.B
		if _, err := tx.Exec(ctx, "INSERT INTO effects (v) VALUES ($1)", *reply); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE idem SET reply = $2 WHERE key = $1", args.Key, *reply)
		return err
	})
}

// StartHandWrittenPg serves Idem with plain net/rpc, with n clients, each
// of which sends a key of its own with every call, and a pool of as many
// connections as pgstore's default.
func StartHandWrittenPg(tb testing.TB, n int) *Server {
	cfg, err := pgxpool.ParseConfig(pgDatabase(tb, "hand-written"))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = pgstore.DefaultMaxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var run [8]byte
	rand.Read(run[:])
	prefix := hex.EncodeToString(run[:])
	s := startNetRPCWith(tb, n, func(srv *stdrpc.Server) error { return srv.RegisterName("Idem", &Idem{pool}) },
		func(c *stdrpc.Client, i int) caller {
			var seq atomic.Uint64
			return func(_ context.Context, args Args, reply *int) error {
				key := fmt.Sprintf("%s-%d-%d", prefix, i, seq.Add(1))
				return c.Call("Idem.Add", IdemArgs{Key: key, Args: args}, reply)
			}
		})
	stop := s.stop
	s.stop = func() {
		stop()
		pool.Close()
	}
	return s
}

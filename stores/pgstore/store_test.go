package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/semrpc/semrpc/internal/pgtest"
	"github.com/semrpc/semrpc/semantics"
	"go.uber.org/goleak"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	pgtest.Main(&leakCheck{m}, &pg, nil)
}

// leakCheck runs the tests, then fails them if a goroutine outlives them.
type leakCheck struct{ m *testing.M }

func (l *leakCheck) Run() int {
	code := l.m.Run()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/semrpc/semrpc/internal/pgtest.(*Server).start.func1")); err != nil {
			fmt.Println("goleak:", err)
			return 1
		}
	}
	return code
}

const svcTable = "CREATE TABLE IF NOT EXISTS svc (k text PRIMARY KEY, v text NOT NULL)"

// open opens a store on url, closed when the test ends.
func open(t *testing.T, url string, cfg *Config) *Store {
	t.Helper()
	st, err := Open(context.Background(), url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Pool().Exec(context.Background(), svcTable); err != nil {
		t.Fatal(err)
	}
	return st
}

// setKey is a method body: it writes k=v in the call's transaction and
// replies with v.
func setKey(k, v string, runs *atomic.Int32) func(ctx context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		if runs != nil {
			runs.Add(1)
		}
		tx := TxOf(ctx)
		if tx == nil {
			return nil, errors.New("no transaction in the context")
		}
		_, err := tx.Exec(ctx, "INSERT INTO svc (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v", k, v)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}
}

func readKey(t *testing.T, st *Store, k string) string {
	t.Helper()
	var v string
	err := st.Pool().QueryRow(context.Background(), "SELECT v FROM svc WHERE k = $1", k).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// begin runs a request through st's table and, if NEW, its store, as the
// rpc server does; it returns the outcome and whether fn ran here.
func call(t *testing.T, st *Store, h semantics.Header, fn func(ctx context.Context) (any, error)) (semantics.Outcome, error) {
	t.Helper()
	ctx := context.Background()
	tk, err := st.Table().Begin(ctx, h)
	if err != nil {
		return semantics.Outcome{}, err
	}
	if !tk.Run() {
		return tk.Cached(), nil
	}
	out, err := st.Execute(ctx, h, "Svc.Set", fn)
	if err != nil {
		st.Table().Abort(tk, err)
		return out, err
	}
	st.Table().Finish(tk, out)
	return out, nil
}

func replyString(t *testing.T, out semantics.Outcome) string {
	t.Helper()
	switch r := out.Reply.(type) {
	case *string:
		return *r
	case *semantics.StoredReply:
		var s string
		if err := r.Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("reply %T", out.Reply)
	return ""
}

func TestServersOnOneDatabaseShareEpochAndDomain(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	a, b := open(t, url, nil), open(t, url, nil)
	if a.Epoch() == 0 || a.Epoch() != b.Epoch() || a.Domain() == "" || a.Domain() != b.Domain() {
		t.Fatalf("A epoch %x domain %q, B epoch %x domain %q: want equal, non-zero", a.Epoch(), a.Domain(), b.Epoch(), b.Domain())
	}
	other := open(t, pg.NewDatabase(t), nil)
	if other.Domain() == a.Domain() || other.Epoch() == a.Epoch() {
		t.Fatalf("another database has the same domain %q or epoch", other.Domain())
	}
	var d semantics.DomainStore = a
	_ = d
}

func TestOpenManyServersAtOnce(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	var wg sync.WaitGroup
	domains := make([]string, 4)
	errs := make([]error, 4)
	for i := range domains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := Open(context.Background(), url, nil)
			if err != nil {
				errs[i] = err
				return
			}
			domains[i] = st.Domain()
			st.Close()
		}()
	}
	wg.Wait()
	for i := range domains {
		if errs[i] != nil || domains[i] != domains[0] {
			t.Fatalf("open %d: %v, domain %q; want %q", i, errs[i], domains[i], domains[0])
		}
	}
}

func TestRecordCommitsWithTheWritesAndAnswersAfterRestart(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	st := open(t, url, nil)
	id, err := st.Table().Open()
	if err != nil {
		t.Fatal(err)
	}
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}
	var runs atomic.Int32
	out, err := call(t, st, h, setKey("k", "v1", &runs))
	if err != nil || replyString(t, out) != "v1" || readKey(t, st, "k") != "v1" {
		t.Fatalf("first call: %v, k=%q", err, readKey(t, st, "k"))
	}
	st.Close() // or a crash

	st2 := open(t, url, nil) // a restart: an empty table
	out, err = call(t, st2, h, setKey("k", "v2", &runs))
	if err != nil || replyString(t, out) != "v1" || runs.Load() != 1 || readKey(t, st2, "k") != "v1" {
		t.Fatalf("retry after restart: %v, reply %v, ran %d times, k=%q; want the stored v1, run once", err, out.Reply, runs.Load(), readKey(t, st2, "k"))
	}
	if st2.Table().Stats().Adopted != 1 {
		t.Fatalf("stats %+v, want the session taken over", st2.Table().Stats())
	}
}

func TestApplicationErrorRollsBackWritesAndKeepsItsRecord(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	st := open(t, url, nil)
	id, _ := st.Table().Open()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}
	var runs atomic.Int32
	fail := func(ctx context.Context) (any, error) {
		if _, err := setKey("k", "written", &runs)(ctx); err != nil {
			return nil, err
		}
		return nil, errors.New("insufficient funds")
	}
	out, err := call(t, st, h, fail)
	if err != nil || out.Err == nil || out.Err.Error() != "insufficient funds" {
		t.Fatalf("call: %v, outcome error %v; want the application error", err, out.Err)
	}
	if v := readKey(t, st, "k"); v != "" {
		t.Fatalf("k=%q after an application error, want nothing written", v)
	}
	st2 := open(t, url, nil)
	out, err = call(t, st2, h, fail)
	if err != nil || !errors.Is(out.Err, semantics.ErrApplication) || out.Err.Error() != "insufficient funds" || runs.Load() != 1 {
		t.Fatalf("retry on another server: %v, %v, ran %d; want the recorded error, run once", err, out.Err, runs.Load())
	}
}

func TestAFailedStatementInTheMethodRollsBackOnlyThatCall(t *testing.T) {
	t.Parallel()
	st := open(t, pg.NewDatabase(t), nil)
	id, _ := st.Table().Open()
	bad := func(ctx context.Context) (any, error) {
		_, err := TxOf(ctx).Exec(ctx, "INSERT INTO no_such_table VALUES (1)")
		return nil, err // the application error of a failed statement
	}
	out, err := call(t, st, semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}, bad)
	if err != nil || out.Err == nil {
		t.Fatalf("failing statement: %v, %v; want an application error", err, out.Err)
	}
	out, err = call(t, st, semantics.Header{Client: id, Seq: 2, Ack: 2, Epoch: st.Epoch()}, setKey("k", "v", nil))
	if err != nil || replyString(t, out) != "v" || readKey(t, st, "k") != "v" {
		t.Fatalf("next call: %v", err)
	}
}

func TestDuplicateOnAnotherServerWaitsOnTheRowLockThenGetsTheStoredReply(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	a, b := open(t, url, nil), open(t, url, nil)
	id, _ := a.Table().Open()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: a.Epoch()}
	var runs atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	slow := func(ctx context.Context) (any, error) {
		reply, err := setKey("k", "from A", &runs)(ctx)
		close(started)
		<-release
		return reply, err
	}
	aDone := make(chan error, 1)
	go func() {
		_, err := call(t, a, h, slow)
		aDone <- err
	}()
	<-started
	type result struct {
		out semantics.Outcome
		err error
	}
	bDone := make(chan result, 1)
	go func() {
		out, err := call(t, b, h, setKey("k", "from B", &runs))
		bDone <- result{out, err}
	}()
	select {
	case r := <-bDone:
		t.Fatalf("the duplicate on B returned (%v, %v) while A still runs the call", r.out.Reply, r.err)
	case <-time.After(200 * time.Millisecond): // waiting on the row lock
	}
	close(release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-bDone:
		if r.err != nil || replyString(t, r.out) != "from A" || runs.Load() != 1 || readKey(t, a, "k") != "from A" {
			t.Fatalf("duplicate on B: %v, reply %v, ran %d times, k=%q; want A's reply, run once", r.err, r.out.Reply, runs.Load(), readKey(t, a, "k"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: the duplicate on B never returned")
	}
}

func TestDuplicateOfACallThatRolledBackRunsOnTheOtherServer(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	a, b := open(t, url, nil), open(t, url, nil)
	id, _ := a.Table().Open()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: a.Epoch()}
	// A's method is stopped by its server's shutdown: not an answer,
	// nothing recorded.
	stopped := func(ctx context.Context) (any, error) {
		setKey("k", "from A", nil)(ctx)
		return nil, semantics.MaybeExecuted(errors.New("server stopping"))
	}
	if _, err := call(t, a, h, stopped); !errors.Is(err, semantics.ErrMaybeExecuted) {
		t.Fatalf("stopped call: %v, want may-have-executed", err)
	}
	var runs atomic.Int32
	out, err := call(t, b, h, setKey("k", "from B", &runs))
	if err != nil || replyString(t, out) != "from B" || runs.Load() != 1 || readKey(t, b, "k") != "from B" {
		t.Fatalf("retry on B: %v, ran %d, k=%q; want run once on B", err, runs.Load(), readKey(t, b, "k"))
	}
}

func TestAcknowledgedCallIsStaleEverywhere(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	a, b := open(t, url, nil), open(t, url, nil)
	id, _ := a.Table().Open()
	ep := a.Epoch()
	for seq := uint64(1); seq <= 3; seq++ {
		if _, err := call(t, a, semantics.Header{Client: id, Seq: seq, Ack: seq, Epoch: ep}, setKey("k", fmt.Sprint(seq), nil)); err != nil {
			t.Fatal(err)
		}
	}
	var runs atomic.Int32
	_, err := call(t, b, semantics.Header{Client: id, Seq: 2, Ack: 2, Epoch: ep}, setKey("k", "again", &runs))
	if !errors.Is(err, semantics.ErrStale) || runs.Load() != 0 {
		t.Fatalf("acknowledged seq 2 on B: %v, ran %d; want ErrStale, not run", err, runs.Load())
	}
	var n int
	if err := a.Pool().QueryRow(context.Background(), "SELECT count(*) FROM semrpc_records").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d records (%v), want 1: those below the ack deleted", n, err)
	}
}

func TestUnknownSessionIsRefusedNotRun(t *testing.T) {
	t.Parallel()
	st := open(t, pg.NewDatabase(t), nil)
	var runs atomic.Int32
	_, err := call(t, st, semantics.Header{Client: semantics.NewClientID(), Seq: 1, Ack: 1, Epoch: st.Epoch()}, setKey("k", "v", &runs))
	if !errors.Is(err, semantics.ErrSessionExpired) || runs.Load() != 0 {
		t.Fatalf("never-opened session: %v, ran %d; want ErrSessionExpired, not run", err, runs.Load())
	}
}

func TestSessionIdleBeyondItsLeaseIsNotTakenOver(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	cfg := &Config{Table: semantics.TableConfig{Lease: 300 * time.Millisecond}}
	a, b := open(t, url, cfg), open(t, url, cfg)
	id, _ := a.Table().Open()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: a.Epoch()}
	if _, live, err := b.FindSession(context.Background(), id); err != nil || !live {
		t.Fatalf("FindSession of a new session: %v, %v; want live", live, err)
	}
	time.Sleep(400 * time.Millisecond)
	var runs atomic.Int32
	if _, err := call(t, b, h, setKey("k", "v", &runs)); !errors.Is(err, semantics.ErrSessionExpired) || runs.Load() != 0 {
		t.Fatalf("session idle past its lease, on B: %v, ran %d; want ErrSessionExpired", err, runs.Load())
	}
}

func TestUnreachableDatabaseRefusesCallsNotRun(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	st := open(t, url, nil)
	id, _ := st.Table().Open()
	if err := pg.DropDatabase(context.Background(), url); err != nil { // the database goes away under the server
		t.Fatal(err)
	}
	var runs atomic.Int32
	_, err := call(t, st, semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}, setKey("k", "v", &runs))
	if !errors.Is(err, semantics.ErrRejected) || semantics.ClassOf(err) != semantics.ClassOf(semantics.ErrRejected) || runs.Load() != 0 {
		t.Fatalf("database gone: %v (class %v), ran %d; want rejected, not run", err, semantics.ClassOf(err), runs.Load())
	}
	_, err = call(t, st, semantics.Header{Client: semantics.NewClientID(), Seq: 1, Ack: 1, Epoch: st.Epoch()}, setKey("k", "v", &runs))
	if !errors.Is(err, semantics.ErrRejected) || runs.Load() != 0 {
		t.Fatalf("session lookup with the database gone: %v, want rejected", err)
	}
	if _, err := Open(context.Background(), url, nil); err == nil || !strings.Contains(err.Error(), "pgstore") {
		t.Fatalf("Open of a missing database: %v, want an error", err)
	}
}

func TestFailedCommitIsMaybeExecutedAndTheStoreKeepsServing(t *testing.T) {
	t.Parallel()
	st := open(t, pg.NewDatabase(t), nil)
	ctx := context.Background()
	// A deferred constraint trigger runs at COMMIT: this one kills its own
	// connection there, so the COMMIT gets no answer (and does not happen).
	_, err := st.Pool().Exec(ctx, `
		CREATE TABLE doomed (x int);
		CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$;
		CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON doomed
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die();`)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := st.Table().Open()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}
	doomed := func(ctx context.Context) (any, error) {
		_, err := TxOf(ctx).Exec(ctx, "INSERT INTO doomed VALUES (1)")
		return nil, err
	}
	_, err = call(t, st, h, doomed)
	if !errors.Is(err, semantics.ErrMaybeExecuted) || semantics.ClassOf(err) != semantics.ClassMaybeExecuted {
		t.Fatalf("commit without an answer: %v (class %v), want may-have-executed", err, semantics.ClassOf(err))
	}
	// The database knows: the commit did not happen, so the retry runs.
	var runs atomic.Int32
	out, err := call(t, st, h, setKey("k", "v", &runs))
	if err != nil || replyString(t, out) != "v" || runs.Load() != 1 {
		t.Fatalf("retry after the failed commit: %v, ran %d; want run (nothing had committed)", err, runs.Load())
	}
}

func TestConcurrentCallsShareTransactions(t *testing.T) {
	t.Parallel()
	st := open(t, pg.NewDatabase(t), &Config{MaxTx: 1})
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	before := st.txs.Load()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := st.Table().Open()
			if err != nil {
				errs <- err
				return
			}
			out, err := call(t, st, semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}, setKey(fmt.Sprint(i), fmt.Sprint(i), nil))
			if err == nil && *out.Reply.(*string) != fmt.Sprint(i) {
				err = fmt.Errorf("call %d: reply %v", i, out.Reply)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var count int
	st.Pool().QueryRow(context.Background(), "SELECT count(*) FROM svc").Scan(&count)
	txs := st.txs.Load() - before
	if count != n || txs >= 2*n {
		t.Fatalf("%d rows, %d transactions for %d calls and %d sessions; want %d rows and shared transactions", count, txs, n, n, n)
	}
	t.Logf("%d calls and %d session opens in %d transactions", n, n, txs)
}

func TestPanicInAMethodReachesItsCallerAndSparesTheOthers(t *testing.T) {
	t.Parallel()
	st := open(t, pg.NewDatabase(t), nil)
	id, _ := st.Table().Open()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want boom", p)
			}
		}()
		st.Execute(context.Background(), h, "Svc.Set", func(ctx context.Context) (any, error) {
			setKey("k", "panicked", nil)(ctx)
			panic("boom")
		})
	}()
	out, err := st.Execute(context.Background(), h, "Svc.Set", setKey("k", "v", nil))
	if err != nil || replyString(t, out) != "v" || readKey(t, st, "k") != "v" {
		t.Fatalf("after a panic: %v, k=%q", err, readKey(t, st, "k"))
	}
}

func TestTransactCommitsOrRollsBack(t *testing.T) {
	t.Parallel()
	st := open(t, pg.NewDatabase(t), nil)
	ctx := context.Background()
	out, err := st.Transact(ctx, setKey("a", "1", nil))
	if err != nil || out.Err != nil || readKey(t, st, "a") != "1" {
		t.Fatalf("Transact: %v, %v", err, out.Err)
	}
	out, err = st.Transact(ctx, func(ctx context.Context) (any, error) {
		setKey("b", "2", nil)(ctx)
		return nil, errors.New("no")
	})
	if err != nil || out.Err == nil || readKey(t, st, "b") != "" {
		t.Fatalf("Transact with an application error: %v, %v, b=%q; want rolled back", err, out.Err, readKey(t, st, "b"))
	}
}

func TestClosedStoreRefuses(t *testing.T) {
	t.Parallel()
	st := open(t, pg.NewDatabase(t), nil)
	id, _ := st.Table().Open()
	st.Close()
	var runs atomic.Int32
	_, err := st.Execute(context.Background(), semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}, "Svc.Set", setKey("k", "v", &runs))
	if !errors.Is(err, semantics.ErrRejected) || runs.Load() != 0 {
		t.Fatalf("Execute after Close: %v, want rejected", err)
	}
}

func TestCallCompletedOnOneServerIsAnsweredByAnother(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	a, b := open(t, url, nil), open(t, url, nil)
	id, _ := a.Table().Open()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: a.Epoch()}
	var runs atomic.Int32
	if _, err := call(t, a, h, setKey("k", "on A", &runs)); err != nil {
		t.Fatal(err)
	}
	out, err := call(t, b, h, setKey("k", "on B", &runs)) // A still serving
	if err != nil || replyString(t, out) != "on A" || runs.Load() != 1 || readKey(t, b, "k") != "on A" {
		t.Fatalf("duplicate on B: %v, reply %v, ran %d; want A's reply, run once", err, out.Reply, runs.Load())
	}
	// B now holds the session: its next call runs there.
	out, err = call(t, b, semantics.Header{Client: id, Seq: 2, Ack: 2, Epoch: a.Epoch()}, setKey("k", "on B", &runs))
	if err != nil || replyString(t, out) != "on B" || runs.Load() != 2 {
		t.Fatalf("next call on B: %v, ran %d", err, runs.Load())
	}
}

func TestClosedSessionIsTakenOverButRunsNothingTwice(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	a, b := open(t, url, nil), open(t, url, nil)
	id, _ := a.Table().Open()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: a.Epoch()}
	var runs atomic.Int32
	if _, err := call(t, a, h, setKey("k", "v", &runs)); err != nil {
		t.Fatal(err)
	}
	a.Table().Close(id) // the client closed it on A; the database still holds it
	if _, err := call(t, a, h, setKey("k", "again", &runs)); err != nil || runs.Load() != 1 {
		t.Fatalf("late duplicate on A after Close: %v, ran %d; want answered from the record", err, runs.Load())
	}
	out, err := call(t, b, h, setKey("k", "again", &runs))
	if err != nil || replyString(t, out) != "v" || runs.Load() != 1 {
		t.Fatalf("late duplicate on B after Close on A: %v, ran %d; want the record, not run", err, runs.Load())
	}
}

// DatabaseForExamples returns a new database of the tests' server, for
// the package's examples (which have no *testing.T to drop it with: the
// server is removed when the tests end).
func DatabaseForExamples() string {
	url, err := pg.CreateDatabase(context.Background())
	if err != nil {
		panic(err)
	}
	return url
}

func TestDuplicateRunsOnceWhenTheFirstServersConnectionDiesBeforeItsCommit(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	a, b := open(t, url, nil), open(t, url, nil)
	id, _ := a.Table().Open()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: a.Epoch()}
	var runsA, runsB atomic.Int32
	pid := make(chan int32, 1)
	release := make(chan struct{})
	dying := func(ctx context.Context) (any, error) {
		reply, err := setKey("k", "from A", &runsA)(ctx)
		var p int32
		TxOf(ctx).QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p)
		pid <- p
		<-release
		return reply, err
	}
	aDone := make(chan error, 1)
	go func() {
		_, err := call(t, a, h, dying)
		aDone <- err
	}()
	p := <-pid
	type result struct {
		out semantics.Outcome
		err error
	}
	bDone := make(chan result, 1)
	go func() {
		out, err := call(t, b, h, setKey("k", "from B", &runsB))
		bDone <- result{out, err}
	}()
	time.Sleep(100 * time.Millisecond) // B waits on the record's row lock
	// What PostgreSQL sees when A's process dies: its connection ends, and
	// its transaction with it.
	if _, err := b.Pool().Exec(context.Background(), "SELECT pg_terminate_backend($1)", p); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-bDone:
		if r.err != nil || replyString(t, r.out) != "from B" || runsB.Load() != 1 || readKey(t, b, "k") != "from B" {
			t.Fatalf("duplicate on B: %v, reply %v, ran %d on B, k=%q; want run once on B", r.err, r.out.Reply, runsB.Load(), readKey(t, b, "k"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: the duplicate on B never returned")
	}
	close(release)
	if err := <-aDone; !errors.Is(err, semantics.ErrRejected) {
		t.Fatalf("A's call after its connection died: %v, want not executed (nothing of it committed)", err)
	}
}

// hidesFailure writes k, then runs a statement that fails and returns nil
// all the same, leaving the transaction aborted.
func hidesFailure(k string) func(ctx context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		setKey(k, "hidden", nil)(ctx)
		TxOf(ctx).Exec(ctx, "INSERT INTO no_such_table VALUES (1)")
		return nil, nil
	}
}

func TestAMethodThatHidesAFailedStatementIsRefusedAndSparesItsBatch(t *testing.T) {
	t.Parallel()
	st := open(t, pg.NewDatabase(t), &Config{MaxTx: 1})
	ctx := context.Background()
	header := func() semantics.Header {
		id, err := st.Table().Open()
		if err != nil {
			t.Fatal(err)
		}
		return semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}
	}
	queued := func(n int) {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			st.cmu.Lock()
			q := len(st.queue)
			st.cmu.Unlock()
			if q == n {
				return
			}
		}
		t.Fatalf("queue never held %d calls", n)
	}
	// Alone (the transaction's last call): refused, nothing of it kept.
	if _, err := st.Execute(ctx, header(), "Svc.Set", hidesFailure("alone")); !errors.Is(err, semantics.ErrRejected) {
		t.Fatalf("lone call hiding a failed statement: %v, want rejected", err)
	}
	// Last of a shared transaction: the call before it commits.
	hx, hg, hf := header(), header(), header()
	started, release := make(chan struct{}), make(chan struct{})
	errs := make(chan error, 3)
	go func() {
		_, err := st.Execute(ctx, hx, "Svc.Set", func(ctx context.Context) (any, error) {
			close(started)
			<-release
			return setKey("x", "x", nil)(ctx)
		})
		errs <- err
	}()
	<-started
	good := make(chan error, 1)
	go func() {
		_, err := st.Execute(ctx, hg, "Svc.Set", setKey("g", "g", nil))
		good <- err
	}()
	queued(1)
	bad := make(chan error, 1)
	go func() {
		_, err := st.Execute(ctx, hf, "Svc.Set", hidesFailure("f"))
		bad <- err
	}()
	queued(2)
	close(release)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if err := <-good; err != nil {
		t.Fatalf("the call sharing the transaction: %v, want committed", err)
	}
	if err := <-bad; !errors.Is(err, semantics.ErrRejected) {
		t.Fatalf("last call hiding a failed statement: %v, want rejected", err)
	}
	if readKey(t, st, "g") != "g" || readKey(t, st, "f") != "" || readKey(t, st, "alone") != "" {
		t.Fatalf("g=%q f=%q alone=%q; want g committed, the others rolled back", readKey(t, st, "g"), readKey(t, st, "f"), readKey(t, st, "alone"))
	}
}

package bench

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/semrpc/semrpc/crawler"
	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/semantics"
)

// extraGroups are the benchmarks beyond the TCP comparison.
func extraGroups() []Group {
	return []Group{
		{Name: "labrpc, reliable", Baseline: -1, Cases: []Case{
			{"RequestVote, 1 caller", func(b *testing.B) { labNet(b, 1) }},
			{"RequestVote, 32 callers", func(b *testing.B) { labNet(b, 32) }},
		}},
		{Name: "dedup table", Baseline: -1, Cases: []Case{
			{"Begin+Finish, new call", TableNew},
			{"Begin, duplicate answered", TableDuplicate},
		}},
		{Name: "crawler, 20 ms pages", Baseline: -1, Cases: []Case{
			{"mutex, 16 in flight", func(b *testing.B) { crawl(b, crawler.ConcurrentMutex) }},
			{"channel, 16 in flight", func(b *testing.B) { crawl(b, crawler.ConcurrentChannel) }},
		}},
	}
}

type empty struct{}

// TableNew times admitting and finishing a fresh call in one session.
func TableNew(b *testing.B) {
	t := semantics.NewTable(nil)
	id, err := t.Open()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	out := semantics.Outcome{Reply: &empty{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := uint64(i + 1)
		tk, err := t.Begin(ctx, semantics.Header{Client: id, Seq: seq, Ack: seq, Epoch: t.Epoch()})
		if err != nil || !tk.Run() {
			b.Fatal("not admitted as new", err)
		}
		t.Finish(tk, out)
	}
}

// TableDuplicate times a duplicate answered from a completed record.
func TableDuplicate(b *testing.B) {
	t := semantics.NewTable(nil)
	id, err := t.Open()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: t.Epoch()}
	tk, err := t.Begin(ctx, h)
	if err != nil {
		b.Fatal(err)
	}
	t.Finish(tk, semantics.Outcome{Reply: &empty{}})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk, err := t.Begin(ctx, h)
		if err != nil || tk.Run() {
			b.Fatal("duplicate not answered from the table", err)
		}
	}
}

// RequestVoteArgs and RequestVoteReply have the shape of Raft's.
type RequestVoteArgs struct {
	Term, CandidateId, LastLogIndex, LastLogTerm int
}

// RequestVoteReply is Raft's vote.
type RequestVoteReply struct {
	Term        int
	VoteGranted bool
}

// Raft is a lab-style service with one handler.
type Raft struct{}

// RequestVote grants every vote.
func (r *Raft) RequestVote(args *RequestVoteArgs, reply *RequestVoteReply) {
	reply.Term = args.Term
	reply.VoteGranted = true
}

// labNet times RequestVote calls on a reliable lab network, from callers
// goroutines each with its own end, as Raft peers have.
func labNet(b *testing.B, callers int) {
	net := labrpc.MakeNetworkSeed(1)
	defer net.Cleanup()
	srv := labrpc.MakeServer()
	srv.AddService(labrpc.MakeService(&Raft{}))
	net.AddServer("raft", srv)
	ends := make(chan *labrpc.ClientEnd, callers)
	for i := 0; i < callers; i++ {
		name := fmt.Sprintf("peer-%d", i)
		e := net.MakeEnd(name)
		net.Connect(name, "raft")
		net.Enable(name, true)
		ends <- e
	}
	b.ReportAllocs()
	b.SetParallelism((callers + 1) / 2)
	b.ResetTimer()
	if callers == 1 {
		e := <-ends
		for i := 0; i < b.N; i++ {
			var reply RequestVoteReply
			if !e.Call("Raft.RequestVote", &RequestVoteArgs{Term: i}, &reply) || reply.Term != i {
				b.Fatal("call failed")
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		var e *labrpc.ClientEnd
		select {
		case e = <-ends:
		default:
			b.Error("more goroutines than ends")
			return
		}
		i := 0
		for pb.Next() {
			i++
			var reply RequestVoteReply
			if !e.Call("Raft.RequestVote", &RequestVoteArgs{Term: i}, &reply) || reply.Term != i {
				b.Error("call failed")
				return
			}
		}
	})
}

// crawl times a crawl of a 1,000-page local site whose pages take 20 ms,
// politeness off, 16 fetches in flight; it reports pages/s and the
// fraction of the ideal rate (in flight ÷ latency).
func crawl(b *testing.B, strategy crawler.Strategy) {
	const (
		pages       = 1000
		latency     = 20 * time.Millisecond
		parallelism = 16
	)
	site := crawler.NewSite(pages, 1)
	site.Latency = latency
	srv := httptest.NewServer(site)
	defer srv.Close()
	hf, err := crawler.NewHTTPFetcher(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer hf.Close()
	cfg := crawler.DefaultConfig()
	cfg.IgnoreRobots = true
	cfg.MaxInFlightPerHost = parallelism
	cfg.RetryInitialInterval = time.Millisecond
	fetched := 0
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		site.Reset()
		pf, err := crawler.Polite(hf, cfg)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		res, err := strategy(context.Background(), srv.URL+"/", pf, crawler.WithParallelism(parallelism))
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		fetched += res.Fetches
	}
	rate := float64(fetched) / elapsed.Seconds()
	b.ReportMetric(rate, "pages/s")
	b.ReportMetric(rate/(parallelism/latency.Seconds()), "of-ideal")
}

// Package promstats exports a semrpc server's and client's counters as a
// prometheus.Collector. It is the only package of this module that imports
// github.com/prometheus/client_golang: programs that do not import it do
// not build it.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(promstats.NewServerCollector(srv, nil))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The values are read from Server.Stats and Client.Stats (and, for a
// cluster client, Client.Servers: semrpc_client_server_in_rotation and
// semrpc_client_server_outstanding, by addr) at each scrape;
// nothing is recorded twice. Give each server or client its own const
// labels when one registry holds several.
package promstats

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// methodDescs describe the per-method metrics of one side ("server" or
// "client").
type methodDescs struct {
	duration, errors, max *prometheus.Desc
}

func newMethodDescs(side, help string, constLabels prometheus.Labels) methodDescs {
	return methodDescs{
		duration: prometheus.NewDesc("semrpc_"+side+"_call_duration_seconds",
			"Duration of "+help+", by method (count and sum).", []string{"method"}, constLabels),
		errors: prometheus.NewDesc("semrpc_"+side+"_call_errors_total",
			"Number of "+help+" that ended in an error, by method.", []string{"method"}, constLabels),
		max: prometheus.NewDesc("semrpc_"+side+"_call_max_seconds",
			"Longest of "+help+" so far, by method.", []string{"method"}, constLabels),
	}
}

func (d methodDescs) describe(ch chan<- *prometheus.Desc) {
	ch <- d.duration
	ch <- d.errors
	ch <- d.max
}

func (d methodDescs) collect(ch chan<- prometheus.Metric, methods map[string]rpc.MethodStats) {
	for name, m := range methods {
		ch <- prometheus.MustNewConstSummary(d.duration, m.Calls, m.Latency.Seconds(), nil, name)
		ch <- prometheus.MustNewConstMetric(d.errors, prometheus.CounterValue, float64(m.Errors), name)
		ch <- prometheus.MustNewConstMetric(d.max, prometheus.GaugeValue, m.Max.Seconds(), name)
	}
}

// ServerCollector exports a server's Stats.
type ServerCollector struct {
	s           *rpc.Server
	methods     methodDescs
	rejected    *prometheus.Desc
	connections *prometheus.Desc
	tableEvents *prometheus.Desc
	sessions    *prometheus.Desc
}

var _ prometheus.Collector = (*ServerCollector)(nil)

// NewServerCollector returns a collector for s; constLabels (may be nil)
// are added to every metric.
func NewServerCollector(s *rpc.Server, constLabels prometheus.Labels) *ServerCollector {
	return &ServerCollector{
		s:       s,
		methods: newMethodDescs("server", "method executions", constLabels),
		rejected: prometheus.NewDesc("semrpc_server_rejected_total",
			"Number of requests refused before running (unknown method, bad arguments, shutting down, table refusals).", nil, constLabels),
		connections: prometheus.NewDesc("semrpc_server_connections",
			"Number of open connections.", nil, constLabels),
		tableEvents: prometheus.NewDesc("semrpc_server_table_events_total",
			"Number of events of the at-most-once table, by event.", []string{"event"}, constLabels),
		sessions: prometheus.NewDesc("semrpc_server_table_sessions",
			"Number of live at-most-once sessions.", nil, constLabels),
	}
}

// Describe implements prometheus.Collector.
func (c *ServerCollector) Describe(ch chan<- *prometheus.Desc) {
	c.methods.describe(ch)
	ch <- c.rejected
	ch <- c.connections
	ch <- c.tableEvents
	ch <- c.sessions
}

// Collect implements prometheus.Collector.
func (c *ServerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	c.methods.collect(ch, st.Methods)
	ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(st.Rejected))
	ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, float64(st.Connections))
	for _, e := range tableEvents(st.Table) {
		ch <- prometheus.MustNewConstMetric(c.tableEvents, prometheus.CounterValue, float64(e.n), e.name)
	}
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(st.Table.Sessions))
}

type event struct {
	name string
	n    uint64
}

// tableEvents lists the table's counters under their label values.
func tableEvents(t semantics.TableStats) []event {
	return []event{
		{"new", t.New},
		{"duplicate", t.Duplicates},
		{"in_flight_wait", t.InFlightWaits},
		{"stale", t.Stale},
		{"session_opened", t.Opened},
		{"session_closed", t.Closed},
		{"session_expired", t.Expired},
		{"session_evicted", t.Evicted},
		{"too_many_sessions", t.TooMany},
		{"epoch_mismatch", t.EpochMismatch},
		{"unknown_session", t.Unknown},
		{"bad_header", t.BadHeader},
		{"window_exceeded", t.WindowExceeded},
		{"aborted", t.Aborted},
		{"restored", t.Restored},
	}
}

// ClientCollector exports a client's Stats.
type ClientCollector struct {
	c              *rpc.Client
	methods        methodDescs
	attempts       *prometheus.Desc
	retries        *prometheus.Desc
	freeRetries    *prometheus.Desc
	budgetRefusals *prometheus.Desc
	sessionsOpened *prometheus.Desc
	sessionResets  *prometheus.Desc
	inRotation     *prometheus.Desc // per server of a cluster client
	outstanding    *prometheus.Desc
}

var _ prometheus.Collector = (*ClientCollector)(nil)

// NewClientCollector returns a collector for c; constLabels (may be nil)
// are added to every metric.
func NewClientCollector(c *rpc.Client, constLabels prometheus.Labels) *ClientCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("semrpc_client_"+name, help, nil, constLabels)
	}
	return &ClientCollector{
		c:              c,
		methods:        newMethodDescs("client", "calls as the caller saw them (retries included)", constLabels),
		attempts:       desc("attempts_total", "Number of attempts started, first attempts included."),
		retries:        desc("retries_total", "Number of attempts started after a failed one."),
		freeRetries:    desc("free_retries_total", "Number of retries after an attempt that was not sent (no attempt count, no budget)."),
		budgetRefusals: desc("budget_refusals_total", "Number of calls that ended because the retry budget refused a retry."),
		sessionsOpened: desc("sessions_opened_total", "Number of at-most-once sessions opened."),
		sessionResets:  desc("session_resets_total", "Number of sessions dropped after expiry or a server restart."),
		inRotation: prometheus.NewDesc("semrpc_client_server_in_rotation",
			"1 if the server of a cluster client (rpc.DialCluster) is in rotation, 0 if its last dial failed.", []string{"addr"}, constLabels),
		outstanding: prometheus.NewDesc("semrpc_client_server_outstanding",
			"Number of the cluster client's attempts in progress on the server.", []string{"addr"}, constLabels),
	}
}

// Describe implements prometheus.Collector.
func (c *ClientCollector) Describe(ch chan<- *prometheus.Desc) {
	c.methods.describe(ch)
	for _, d := range []*prometheus.Desc{c.attempts, c.retries, c.freeRetries, c.budgetRefusals, c.sessionsOpened, c.sessionResets, c.inRotation, c.outstanding} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ClientCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.c.Stats()
	c.methods.collect(ch, st.Methods)
	counter := func(d *prometheus.Desc, n uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n))
	}
	counter(c.attempts, st.Run.Attempts)
	counter(c.retries, st.Run.Retries)
	counter(c.freeRetries, st.Run.FreeRetries)
	counter(c.budgetRefusals, st.Run.BudgetRefusals)
	counter(c.sessionsOpened, st.SessionsOpened)
	counter(c.sessionResets, st.SessionResets)
	for _, sv := range c.c.Servers() { // none unless a cluster client
		up := 0.0
		if sv.InRotation {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.inRotation, prometheus.GaugeValue, up, sv.Addr)
		ch <- prometheus.MustNewConstMetric(c.outstanding, prometheus.GaugeValue, float64(sv.Outstanding), sv.Addr)
	}
}

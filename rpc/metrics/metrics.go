// Package metrics exports a semrpc server's and client's counters through
// expvar, with the standard library only. For Prometheus, see the
// promstats package beside it, the only one in this module that imports
// the Prometheus client.
//
// Each Var computes a snapshot (Server.Stats, Client.Stats) when read:
//
//	expvar.Publish("semrpc_server", metrics.ServerVar(srv))
//
// and /debug/vars (net/http with expvar imported) shows it as JSON.
package metrics

import (
	"expvar"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Method is one method's counters as a Var shows them.
type Method struct {
	Calls        uint64  `json:"calls"`
	Errors       uint64  `json:"errors"`
	SecondsTotal float64 `json:"seconds_total"` // summed latency
	MaxSeconds   float64 `json:"max_seconds"`   // slowest call
	MeanSeconds  float64 `json:"mean_seconds"`  // SecondsTotal / Calls, 0 before the first
}

// Server is what ServerVar shows.
type Server struct {
	Methods     map[string]Method    `json:"methods"` // by "Service.Method"; executions only
	Rejected    uint64               `json:"rejected"`
	Connections int64                `json:"connections"`
	Table       semantics.TableStats `json:"table"`
}

// Client is what ClientVar shows.
type Client struct {
	Methods        map[string]Method  `json:"methods"` // calls as the caller saw them, retries included
	Run            semantics.RunStats `json:"run"`
	SessionsOpened uint64             `json:"sessions_opened"`
	SessionResets  uint64             `json:"session_resets"`
	// Servers is, for a client made by rpc.DialCluster, what it knows of
	// each server (Client.Servers); empty for other clients.
	Servers []ClusterServer `json:"servers,omitempty"`
}

// ClusterServer is one server of a cluster client, as ClientVar shows it.
type ClusterServer struct {
	Addr        string `json:"addr"`
	InRotation  bool   `json:"in_rotation"`
	Outstanding int    `json:"outstanding"`          // the client's attempts in progress on it
	LastError   string `json:"last_error,omitempty"` // the dial that took it out of rotation
}

// ServerVar returns a Var whose value is s's counters.
func ServerVar(s *rpc.Server) expvar.Var { return expvar.Func(func() any { return ServerSnapshot(s) }) }

// ClientVar returns a Var whose value is c's counters.
func ClientVar(c *rpc.Client) expvar.Var { return expvar.Func(func() any { return ClientSnapshot(c) }) }

// ServerSnapshot returns s's counters in the form ServerVar shows.
func ServerSnapshot(s *rpc.Server) Server {
	st := s.Stats()
	return Server{Methods: methods(st.Methods), Rejected: st.Rejected, Connections: st.Connections, Table: st.Table}
}

// ClientSnapshot returns c's counters in the form ClientVar shows.
func ClientSnapshot(c *rpc.Client) Client {
	st := c.Stats()
	out := Client{Methods: methods(st.Methods), Run: st.Run, SessionsOpened: st.SessionsOpened, SessionResets: st.SessionResets}
	for _, sv := range c.Servers() {
		cs := ClusterServer{Addr: sv.Addr, InRotation: sv.InRotation, Outstanding: sv.Outstanding}
		if sv.LastError != nil {
			cs.LastError = sv.LastError.Error()
		}
		out.Servers = append(out.Servers, cs)
	}
	return out
}

func methods(in map[string]rpc.MethodStats) map[string]Method {
	out := make(map[string]Method, len(in))
	for name, m := range in {
		out[name] = Method{
			Calls:        m.Calls,
			Errors:       m.Errors,
			SecondsTotal: m.Latency.Seconds(),
			MaxSeconds:   m.Max.Seconds(),
			MeanSeconds:  m.Mean().Seconds(),
		}
	}
	return out
}

package promstats_test

import (
	"context"
	"fmt"
	"log"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/rpc/metrics/promstats"
)

func ExampleNewServerCollector() {
	srv := rpc.NewServer()
	if err := srv.Register(Calc{}); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(promstats.NewServerCollector(srv, prometheus.Labels{"server": "calc"}))

	c, err := rpc.Dial(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var q int
	c.Call(context.Background(), "Calc.Div", Pair{1, 0}, &q) // an application error
	c.Call(context.Background(), "Calc.Nope", Pair{}, &q)    // refused: unknown method

	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, mf := range families {
		switch mf.GetName() {
		case "semrpc_server_call_errors_total", "semrpc_server_rejected_total":
			for _, m := range mf.GetMetric() {
				fmt.Println(mf.GetName(), m.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// semrpc_server_call_errors_total 1
	// semrpc_server_rejected_total 1
}

func ExampleNewClientCollector() {
	srv := rpc.NewServer()
	if err := srv.Register(Calc{}); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	c, err := rpc.Dial(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(promstats.NewClientCollector(c, prometheus.Labels{"client": "calc"}))
	var q int
	for range 3 {
		if err := c.Call(context.Background(), "Calc.Div", Pair{9, 3}, &q); err != nil {
			log.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, mf := range families {
		switch mf.GetName() {
		case "semrpc_client_attempts_total":
			fmt.Println(mf.GetName(), mf.GetMetric()[0].GetCounter().GetValue())
		case "semrpc_client_call_duration_seconds":
			fmt.Println(mf.GetName(), "count", mf.GetMetric()[0].GetSummary().GetSampleCount())
		}
	}
	// Output:
	// semrpc_client_attempts_total 3
	// semrpc_client_call_duration_seconds count 3
}

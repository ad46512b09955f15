package labtest_test

import (
	"testing"
	"time"

	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/labrpc/labtest"
)

// A lab test wrapped in Virtual: its sleeps take no real time. (Examples
// cannot receive a *testing.T, so this one shows the test function
// without running it.)
func ExampleVirtual() {
	_ = func(t *testing.T) {
		labtest.Virtual(t, func(t *testing.T) {
			net := labrpc.MakeNetwork()
			defer net.Cleanup()
			start := time.Now()
			time.Sleep(5 * time.Second) // let an election happen
			if time.Since(start) != 5*time.Second {
				t.Fatal("virtual time is exact")
			}
		})
	}
}

package labrpc

import "testing"

// BenchmarkCheckBubble measures what every call pays to check that it runs
// where its network was made (outside any bubble here).
func BenchmarkCheckBubble(b *testing.B) {
	n := MakeNetworkSeed(1)
	defer n.Cleanup()
	for b.Loop() {
		n.checkBubble("a call")
	}
}

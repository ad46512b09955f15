package semantics

import "testing"

func TestNewEpochIsNonZeroAndRandom(t *testing.T) {
	seen := make(map[uint64]bool)
	for range 100 {
		e := NewEpoch()
		if e == 0 || seen[e] {
			t.Fatalf("NewEpoch() = %x (seen before: %v)", e, seen[e])
		}
		seen[e] = true
	}
}

func TestEncodeReplyRoundTripsThroughStoredReply(t *testing.T) {
	type reply struct{ N int }
	data, err := EncodeReply("Svc.M", &reply{N: 7})
	if err != nil {
		t.Fatal(err)
	}
	var got reply
	if err := (&StoredReply{Method: "Svc.M", Data: data}).Decode(&got); err != nil || got.N != 7 {
		t.Fatalf("Decode: %+v, %v; want N 7", got, err)
	}
	if data, err := EncodeReply("Svc.M", nil); err != nil || data != nil {
		t.Fatalf("EncodeReply(nil) = %x, %v; want no bytes", data, err)
	}
	if _, err := EncodeReply("Svc.M", func() {}); err == nil {
		t.Fatal("EncodeReply of a func: no error")
	}
}

package upstream

import "testing"

// recordConn follows TLS record framing however the stream is cut.
func TestRecordConnFollowsRecords(t *testing.T) {
	// Two records: 3 body bytes, then 0, then a header cut short.
	stream := []byte{23, 3, 3, 0, 3, 'a', 'b', 'c', 23, 3, 3, 0, 0, 23, 3}
	for cut := range len(stream) + 1 {
		var r recordConn
		r.follow(stream[:cut])
		r.follow(stream[cut:])
		if !r.midRecord() {
			t.Fatalf("cut at %d: a partial header not seen", cut)
		}
	}
	var r recordConn
	r.follow(stream[:13])
	if r.midRecord() {
		t.Fatal("a stream ending on a record boundary seen as mid-record")
	}
	r.follow([]byte{23, 3, 3, 1, 0}) // a header announcing 256 bytes
	r.follow(make([]byte, 255))
	if !r.midRecord() {
		t.Fatal("a record one byte short seen as complete")
	}
	r.follow([]byte{0})
	if r.midRecord() {
		t.Fatal("a complete record seen as partial")
	}
}

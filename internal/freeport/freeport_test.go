package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPick(t *testing.T) {
	lo, hi := band()
	for range 20 {
		p, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if p < lo || p >= hi {
			t.Errorf("port %d outside [%d, %d)", p, lo, hi)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("the picked port %d cannot be listened on: %v", p, err)
		}
		l.Close()
	}
}

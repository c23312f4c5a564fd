package httpwire

import (
	"net"
	"testing"
	"time"
)

// deadlineConn records the deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

func TestDeadlineCover(t *testing.T) {
	c := &deadlineConn{}
	var dl Deadline
	now := time.Now()
	dl.Cover(c, now.Add(20*time.Second)) // first: set, a second later (the cap)
	dl.Cover(c, now.Add(20*time.Second+100*time.Millisecond))
	if len(c.set) != 1 || c.set[0].Sub(now.Add(20*time.Second)) != time.Second {
		t.Fatalf("deadlines set %v, want one, a second past the first wanted", c.set)
	}
	dl.Cover(c, now.Add(22*time.Second)) // past the one set: moves
	dl.Cover(c, now.Add(2*time.Second))  // far earlier than the one set: moves back
	if len(c.set) != 3 || !c.set[2].Before(now.Add(3*time.Second)) {
		t.Fatalf("deadlines set %v, want three, the last before %v", c.set, now.Add(3*time.Second))
	}
}

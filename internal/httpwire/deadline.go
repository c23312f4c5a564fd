package httpwire

import (
	"net"
	"time"
)

// Deadline is a kept connection's deadline, moved only when a request needs it moved.
// Moving one updates a runtime timer; requests on one connection usually share a timeout,
// so a deadline already set a little later than the one wanted (by at most a tenth of the
// timeout, or a second) stays, and a new one is set that much later. A connection whose
// deadline something else moved (a cancelled request) is not to be reused with it.
type Deadline struct {
	set time.Time
}

// Cover makes c's deadline fall within slack after d.
func (dl *Deadline) Cover(c net.Conn, d time.Time) {
	slack := min(time.Until(d)/10, time.Second)
	if dl.set.Before(d) || dl.set.Sub(d) > slack {
		dl.set = d.Add(slack)
		c.SetDeadline(dl.set)
	}
}

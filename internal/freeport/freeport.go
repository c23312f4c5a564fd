// Package freeport picks loopback TCP ports for another process to listen on. The kernel's
// own pick (port 0) comes from the ephemeral range, which outgoing connections also draw
// their source ports from: a port found free there, closed and handed to a new process can be
// taken by some connection in between, and on a busy machine it is. So ports are drawn below
// that range, where only listeners live.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// span is how wide the band of ports below the ephemeral range is.
const span = 12000

// Pick returns a loopback port no one listens on now, below the ephemeral range (the
// kernel's choice if none is found there).
func Pick() (int, error) {
	lo, hi := band()
	for range 64 {
		p := lo + rand.IntN(hi-lo)
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// band is the ports below the ephemeral range's low end (Linux's default starts at 32768).
func band() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				hi = n
			}
		}
	}
	return max(1024, hi-span), hi
}

// Addr is Pick as 127.0.0.1:PORT.
func Addr() (string, error) {
	p, err := Pick()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

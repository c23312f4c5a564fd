package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Pod IPs. Every pod gets an address of the node's pod CIDR; the CIDR is routed to this
// host's loopback interface as a local route (Linux "AnyIP"), so the address can be bound
// without configuring it on an interface and is reachable from this machine (the gateway,
// kube-proxy-less Services resolved through EndpointSlices). Loopback addresses themselves
// (127.x) will not do: the API server refuses them in EndpointSlices.

// ipam hands out a CIDR's addresses to pods.
type ipam struct {
	prefix netip.Prefix
	mu     sync.Mutex
	used   map[netip.Addr]string // address -> pod key
	next   netip.Addr
}

func newIPAM(cidr string) (*ipam, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("--pod-cidr %q: %w", cidr, err)
	}
	p = p.Masked()
	if !p.Addr().Is4() || p.Bits() > 30 {
		return nil, fmt.Errorf("--pod-cidr %q: want an IPv4 range of at least 4 addresses (/30 or wider)", cidr)
	}
	if p.Addr().IsLoopback() {
		return nil, fmt.Errorf("--pod-cidr %q: loopback addresses cannot be endpoints of a Service; choose a private range", cidr)
	}
	return &ipam{prefix: p, used: map[netip.Addr]string{}, next: p.Addr().Next()}, nil
}

// allocate gives key an address: preferred when it is in range and free (a pod keeps its IP
// across a restart of the node), else the next free one.
func (a *ipam) allocate(key, preferred string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, err := netip.ParseAddr(preferred); err == nil && a.usable(ip) {
		if owner, taken := a.used[ip]; !taken || owner == key {
			a.used[ip] = key
			return ip, nil
		}
	}
	for ip, owner := range a.used {
		if owner == key {
			return ip, nil
		}
	}
	ip := a.next
	for range 1 << (32 - a.prefix.Bits()) {
		if !a.usable(ip) {
			ip = a.prefix.Addr().Next()
			continue
		}
		if _, taken := a.used[ip]; !taken {
			a.used[ip] = key
			a.next = ip.Next()
			return ip, nil
		}
		ip = ip.Next()
	}
	return netip.Addr{}, fmt.Errorf("pod %s: no free address in the pod CIDR %s", key, a.prefix)
}

// usable: in range, and neither the network nor the broadcast address.
func (a *ipam) usable(ip netip.Addr) bool {
	if !ip.Is4() || !a.prefix.Contains(ip) || ip == a.prefix.Addr() {
		return false
	}
	b := ip.As4()
	host := binary.BigEndian.Uint32(b[:]) & (1<<(32-a.prefix.Bits()) - 1)
	return host != 1<<(32-a.prefix.Bits())-1
}

func (a *ipam) release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.used, ip)
}

// routeLocal makes every address of prefix local to this host (a local route on lo).
func routeLocal(prefix netip.Prefix) (*netlink.Route, error) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %s: find the loopback interface: %w", prefix, err)
	}
	r := &netlink.Route{
		LinkIndex: lo.Attrs().Index,
		Dst:       &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 32)},
		Type:      unix.RTN_LOCAL,
		Table:     unix.RT_TABLE_LOCAL,
		Scope:     netlink.SCOPE_HOST,
		Protocol:  unix.RTPROT_STATIC,
	}
	if err := netlink.RouteReplace(r); err != nil {
		return nil, fmt.Errorf("pod CIDR %s: route it to this host (needs CAP_NET_ADMIN): %w", prefix, err)
	}
	return r, nil
}

// forwarder listens on a pod's IP and port and passes each connection to wherever the
// container's current process serves (it gets a port of its own from the driver, so any
// number of pods can serve on 8080).
type forwarder struct {
	ln     net.Listener
	target func() string // "" while the container is not running
	log    *slog.Logger
	wg     sync.WaitGroup
}

func listenForward(ip netip.Addr, port int32, target func() string, log *slog.Logger) (*forwarder, error) {
	addr := netip.AddrPortFrom(ip, uint16(port)).String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on the pod's %s: %w", addr, err)
	}
	f := &forwarder{ln: ln, target: target, log: log}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

func (f *forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.log.Warn("pod port stopped accepting", "addr", f.ln.Addr(), "err", err)
			}
			return
		}
		go f.pass(c)
	}
}

func (f *forwarder) pass(c net.Conn) {
	defer c.Close()
	target := f.target()
	if target == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	up, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		// TCPConn.ReadFrom splices: the bytes do not pass through this process's memory.
		_, _ = io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(c, up)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	// The client has seen the end; one that never hangs up is cut off after a while.
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
}

func (f *forwarder) close() {
	f.ln.Close()
}

// Package loadgen is what Flick's benchmarks share: a flick server in a temp data dir, the CLI
// against it, and a closed-loop HTTP load generator with latency percentiles.
package loadgen

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flickdev/flick/internal/freeport"
	"github.com/flickdev/flick/pkg/client"
)

// Server is a running flick server for a benchmark.
type Server struct {
	Bin, DataDir, Data, API string
	Token                   string // the API's bearer token
	Client                  *client.Client
	cmd                     *exec.Cmd
}

// Start starts flick server on free loopback ports in a new temp data dir, with extra flags.
func Start(bin string, extra ...string) (*Server, error) {
	dir, err := os.MkdirTemp("", "flick-bench-")
	if err != nil {
		return nil, err
	}
	s := &Server{Bin: bin, DataDir: dir, Data: FreeAddr(), API: FreeAddr()}
	args := append([]string{"server", "--data-dir", dir, "--listen", s.Data, "--listen-tls", "", "--api-listen", s.API, "--log-level", "warn"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stderr = os.Stderr
	// The server goes with the benchmark even when the benchmark is killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.API + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("flick server not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		s.Stop()
		return nil, err
	}
	s.Token = strings.TrimSpace(string(token))
	s.Client = client.New("http://"+s.API, s.Token)
	return s, nil
}

// Stop stops the server and removes its data dir.
func (s *Server) Stop() {
	s.cmd.Process.Signal(os.Interrupt)
	s.cmd.Wait()
	os.RemoveAll(s.DataDir)
}

// Metrics returns the server's Prometheus exposition.
func (s *Server) Metrics() (string, error) {
	req, _ := http.NewRequest("GET", "http://"+s.API+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(b), err
}

// Flick runs the CLI against the server.
func (s *Server) Flick(args ...string) error {
	cmd := exec.Command(s.Bin, args...)
	cmd.Env = append(os.Environ(), "FLICK_API=http://"+s.API, "FLICK_DATA_DIR="+s.DataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("flick %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Result is one load run.
type Result struct {
	N   int64
	Dur time.Duration
	Lat []time.Duration // sorted after Merge or Sort
}

// Merge adds another run of the same target.
func (r *Result) Merge(o Result) { r.N += o.N; r.Dur += o.Dur; r.Lat = append(r.Lat, o.Lat...) }

// Rate is requests per second.
func (r *Result) Rate() float64 { return float64(r.N) / r.Dur.Seconds() }

// Pct returns the p-th percentile latency, formatted.
func (r *Result) Pct(p int) string {
	sort.Slice(r.Lat, func(i, j int) bool { return r.Lat[i] < r.Lat[j] })
	return Pct(r.Lat, p)
}

// Hammer sends GET url (with Host host when set) over conns keep-alive connections for d,
// each connection waiting for its answer before the next request; only 200s count.
func Hammer(url, host string, conns int, d time.Duration) Result {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	res, _, _ := Loop(conns, d, func() error {
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
	return res
}

// Loop is a closed-loop load generator: n goroutines call op until d passes, and the
// latency of every success is kept. It returns the failures' count and the first one.
func Loop(n int, d time.Duration, op func() error) (res Result, failed int64, first error) {
	var ok, bad atomic.Int64
	var firstOnce sync.Once
	lats := make([][]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				t0 := time.Now()
				if err := op(); err != nil {
					bad.Add(1)
					firstOnce.Do(func() { first = err })
					continue
				}
				lats[i] = append(lats[i], time.Since(t0))
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return Result{N: ok.Load(), Dur: time.Since(start), Lat: all}, bad.Load(), first
}

// Pct returns the p-th percentile of sorted durations, formatted.
func Pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return FmtDur(sorted[i])
}

// FmtDur prints µs below a millisecond and ms above.
func FmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}

// FreeAddr returns a free loopback address.
func FreeAddr() string {
	addr, err := freeport.Addr()
	if err != nil {
		panic(err)
	}
	return addr
}

// NumCPU counts the machine's processors.
func NumCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// CPUProfile saves a CPU profile of the server over the next d to path.
func (s *Server) CPUProfile(d time.Duration, path string) error {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.API, max(1, int(d.Seconds()))), nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

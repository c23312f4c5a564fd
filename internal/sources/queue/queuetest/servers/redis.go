package servers

import (
	"path/filepath"
	"strconv"
	"testing"
)

// Redis starts a redis-server whose append-only file is synced on every write
// (appendonly yes, appendfsync always), so a Kill loses nothing it acknowledged. config
// holds further lines of redis.conf (for example users: "user default off"); a line for an
// option set here replaces it. Its URL is redis://127.0.0.1:PORT/0.
func Redis(tb testing.TB, config ...string) Server {
	tb.Helper()
	p := newProcess(tb, "redis-server")
	log := filepath.Join(p.dir, "redis.log")
	conf := append([]string{
		"port " + strconv.Itoa(p.port),
		"bind 127.0.0.1",
		"dir " + p.dir,
		"daemonize no",
		"logfile " + log,
		`save ""`,
		"appendonly yes",
		"appendfsync always",
	}, config...)
	p.args = []string{p.writeFile("redis.conf", conf)}
	p.url = "redis://" + p.Addr() + "/0"
	p.logs = []string{log}
	return p.run()
}

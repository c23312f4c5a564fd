package servers

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Where Debian keeps the programs themselves: /usr/sbin/rabbitmq-server is a wrapper that
// switches to the rabbitmq user, who cannot write the test's directory, and epmd is not on
// PATH.
var (
	rabbitmqDirs = []string{"/usr/lib/rabbitmq/bin"}
	erlangDirs   = []string{"/usr/lib/erlang/bin"}
)

// RabbitMQ starts a RabbitMQ node of the test's own: its node name, ports (AMQP,
// distribution and epmd), data (mnesia), Erlang cookie and logs are its own, it listens on
// loopback only and runs no plugins. Its user is guest with password guest, which the AMQP
// clients use when the URL has none. config holds further lines of rabbitmq.conf (for
// example "default_user = flick" and "default_pass = ..."; add them to the URL with
// WithUser); a line for a key set here replaces it.
//
// A node takes seconds to boot: Start waits up to a minute, until it accepts an AMQP
// login. Kill kills the node's whole process group (the script and the Erlang VM); durable
// queues and the persistent messages it confirmed survive it. The epmd daemon the node
// starts is stopped each time the node ends. Its URL is amqp://127.0.0.1:PORT/.
func RabbitMQ(tb testing.TB, config ...string) Server {
	tb.Helper()
	p := newProcess(tb, "rabbitmq-server")
	p.bin = binary(tb, "rabbitmq-server", rabbitmqDirs...)
	epmd, epmdPort, distPort := binary(tb, "epmd", erlangDirs...), FreePort(tb), FreePort(tb)
	node := "flicktest" + strconv.Itoa(p.port) + "@localhost"
	conf := rabbitmqConf(append([]string{
		"listeners.tcp.1 = " + p.Addr(),
		"default_user = guest",
		"default_pass = guest",
	}, config...))
	p.writeFile("rabbitmq.conf", conf)
	p.writeFile("enabled_plugins", []string{"[]."})
	p.writeFile("rabbitmq-env.conf", nil)
	p.env = append(environWithout("RABBITMQ_", "ERL_"), // another node's settings
		"HOME="+p.dir, // the Erlang cookie goes here
		"LC_ALL=C.UTF-8",
		"RABBITMQ_NODENAME="+node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(p.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"ERL_EPMD_PORT="+strconv.Itoa(epmdPort),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(p.dir, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(p.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(p.dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(p.dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(p.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(p.dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(p.dir, "rabbitmq.pid"),
	)
	p.url = "amqp://" + p.Addr() + "/"
	p.logs = []string{filepath.Join(p.dir, "log", node+".log")}
	p.startTimeout, p.stopTimeout = 60*time.Second, 30*time.Second
	user, pass := confValue(conf, "default_user"), confValue(conf, "default_pass")
	p.ready = func() error {
		// The port opens before the node is done booting; a login says it is.
		conn, err := amqp.DialConfig(WithUser(p.url, user, pass), amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err != nil {
			return err
		}
		return conn.Close()
	}
	p.ended = func() { stopEPMD(epmd, epmdPort) }
	return p.run()
}

// rabbitmqConf is the lines of a rabbitmq.conf, a line for a key set earlier replacing it.
func rabbitmqConf(lines []string) []string {
	var conf []string
	at := map[string]int{} // key -> index in conf
	for _, line := range lines {
		key, _, _ := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if i, ok := at[key]; ok {
			conf[i] = line
			continue
		}
		at[key] = len(conf)
		conf = append(conf, line)
	}
	return conf
}

// confValue is the value of key in rabbitmq.conf lines, or "".
func confValue(conf []string, key string) string {
	for _, line := range conf {
		k, v, _ := strings.Cut(line, "=")
		if strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// environWithout is the test's environment without the variables starting with prefixes.
func environWithout(prefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return env
}

// stopEPMD stops the epmd daemon a node started on port: it runs outside the node's process
// group (it detaches), and would outlive the test. epmd refuses while it still lists a node,
// which it does for a moment after the node has ended.
func stopEPMD(epmd string, port int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		cmd := exec.Command(epmd, "-kill")
		cmd.Env = append(environWithout("ERL_"), "ERL_EPMD_ADDRESS=127.0.0.1", "ERL_EPMD_PORT="+strconv.Itoa(port))
		out, _ := cmd.CombinedOutput()
		if !bytes.Contains(out, []byte("living nodes")) || time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

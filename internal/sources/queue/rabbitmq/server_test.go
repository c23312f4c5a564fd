package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitServer is a RabbitMQ node of the tests' own: its name, ports, data and logs are
// under dir, it listens on loopback only, and its users are the one in its config.
type rabbitServer struct {
	dir            string
	bin            string // rabbitmq-server
	epmd           string // "" when not found: the epmd daemon is then left running
	port, distPort int
	epmdPort       int
	user, pass     string

	cmd    *exec.Cmd
	exited chan struct{}
}

// Where Debian puts the server: /usr/sbin's wrapper switches to the rabbitmq user,
// which cannot write our temporary directory, so the real script comes first.
var rabbitDirs = []string{"/usr/lib/rabbitmq/bin", "/usr/sbin"}

// findBinary looks name up in dirs, then on PATH.
func findBinary(name string, dirs ...string) (string, error) {
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

func newRabbitServer(dir string) (*rabbitServer, error) {
	bin, err := findBinary("rabbitmq-server", rabbitDirs...)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq-server not found in %s or on PATH: run scripts/deps.sh (it installs the Debian package rabbitmq-server)", strings.Join(rabbitDirs, ", "))
	}
	epmd, _ := findBinary("epmd", "/usr/lib/erlang/bin")
	s := &rabbitServer{dir: dir, bin: bin, epmd: epmd, user: "flick", pass: "pw-" + strconv.Itoa(os.Getpid()) + "-s3cret"}
	for _, p := range []*int{&s.port, &s.distPort, &s.epmdPort} {
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	conf := fmt.Sprintf("listeners.tcp.1 = 127.0.0.1:%d\ndefault_user = %s\ndefault_pass = %s\nloopback_users = none\n", s.port, s.user, s.pass)
	for name, content := range map[string]string{
		"rabbitmq.conf":     conf,
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// freePort asks the kernel for a port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL is the server's address with the test user's credentials.
func (s *rabbitServer) URL() string {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(s.user, s.pass), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/"}
	return u.String()
}

func (s *rabbitServer) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		// The tests' node must not pick up another node's settings.
		if !strings.HasPrefix(kv, "RABBITMQ_") && !strings.HasPrefix(kv, "ERL_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"HOME="+s.dir, // the Erlang cookie goes here
		"LC_ALL=C.UTF-8",
		"RABBITMQ_NODENAME=flicktest"+strconv.Itoa(s.port)+"@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(s.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(s.distPort),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"ERL_EPMD_PORT="+strconv.Itoa(s.epmdPort),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(s.dir, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(s.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(s.dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(s.dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(s.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(s.dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(s.dir, "rabbitmq.pid"),
	)
}

// start runs the node and waits until it accepts an AMQP connection.
func (s *rabbitServer) start(ctx context.Context) error {
	out, err := os.OpenFile(filepath.Join(s.dir, "output.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own descriptor
	s.cmd = exec.Command(s.bin)
	s.cmd.Dir = s.dir
	s.cmd.Env = s.env()
	s.cmd.Stdout, s.cmd.Stderr = out, out
	// Its own process group, so that stop reaches the Erlang VM under the script too; and
	// if the test binary dies (a -timeout panic skips TestMain's cleanup), the script gets
	// SIGTERM and stops the node.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		conn, err := amqp.DialConfig(s.URL(), amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("rabbitmq-server exited while starting: %s\n%s", s.cmd.ProcessState, s.tail())
		case <-ctx.Done():
			s.stop()
			return fmt.Errorf("rabbitmq-server did not answer within 60s (%v)\n%s", err, s.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the node as its script asks to be ended (SIGTERM, a clean shutdown that
// keeps persistent messages), and kills the process group if that takes too long.
func (s *rabbitServer) stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		return errors.New("rabbitmq-server did not stop within 30s of SIGTERM; killed it")
	}
	// The VM may outlive the script by a moment.
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	return nil
}

// cleanup stops the node and the epmd daemon that it started on its own port.
func (s *rabbitServer) cleanup() error {
	err := s.stop()
	if s.epmd != "" {
		cmd := exec.Command(s.epmd, "-kill")
		cmd.Env = append(os.Environ(), "ERL_EPMD_PORT="+strconv.Itoa(s.epmdPort))
		cmd.Run()
	}
	return err
}

// tail is the end of the node's output and log, for failure messages.
func (s *rabbitServer) tail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "output.log"))
	text := string(b)
	if logs, _ := filepath.Glob(filepath.Join(s.dir, "log", "*.log")); len(logs) > 0 {
		if b, err := os.ReadFile(logs[0]); err == nil {
			text += string(b)
		}
	}
	if len(text) > 4000 {
		text = text[len(text)-4000:]
	}
	return text
}

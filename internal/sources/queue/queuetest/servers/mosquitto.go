package servers

import (
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// Mosquitto starts a mosquitto that lets anyone connect (allow_anonymous true) and writes
// its sessions and messages to disk on every change (autosave_on_changes true,
// autosave_interval 1), so a Kill after a moment loses nothing it acknowledged. config holds
// further lines of mosquitto.conf (for example "allow_anonymous false" and a
// "password_file" from MosquittoPasswordFile). A line for a true/false or number option set
// here (allow_anonymous, autosave_interval) replaces it; mosquitto refuses a second line for
// the others. Its URL is mqtt://127.0.0.1:PORT.
func Mosquitto(tb testing.TB, config ...string) Server {
	tb.Helper()
	p := newProcess(tb, "mosquitto")
	log := filepath.Join(p.dir, "mosquitto.log")
	conf := append([]string{
		"listener " + strconv.Itoa(p.port) + " 127.0.0.1",
		"log_dest file " + log,
		// Run as root, mosquitto switches to this user: staying the one who owns the test's
		// files keeps them readable.
		"user " + currentUser(tb),
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + p.dir + "/",
		"autosave_on_changes true",
		"autosave_interval 1",
	}, config...)
	p.args = []string{"-c", p.writeFile("mosquitto.conf", conf)}
	p.url = "mqtt://" + p.Addr()
	p.logs = []string{log}
	return p.run()
}

// MosquittoPasswordFile writes a mosquitto password file (made by mosquitto_passwd) that
// lets username in with password, and returns its path.
func MosquittoPasswordFile(tb testing.TB, username, password string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "passwords")
	out, err := exec.Command(binary(tb, "mosquitto_passwd"), "-b", "-c", path, username, password).CombinedOutput()
	if err != nil {
		tb.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	return path
}

func currentUser(tb testing.TB) string {
	tb.Helper()
	u, err := user.Current()
	if err != nil {
		tb.Fatal(err)
	}
	return u.Username
}

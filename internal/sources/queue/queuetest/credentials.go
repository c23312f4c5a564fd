package queuetest

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/queuetest/servers"
)

const (
	// The wrong passwords Credentials tries, in the URL and in Config.
	urlWrongPassword    = "url-wrong-pw"
	configWrongPassword = "config-wrong-pw"
	// refusal is how long Open may take to fail.
	refusal = 10 * time.Second
)

// Credentials checks that a driver authenticates with the credentials it is given and
// keeps every password out of its errors. s.URL is the server's URL without credentials;
// the server admits username with password and nobody else.
//
//   - The credentials work in the URL, in Config over a URL without any, and in Config over
//     a URL with a wrong password (Config's win): each time the driver publishes a message,
//     tells its lag (where the queue has lag) and consumes the message.
//   - Open fails, within 10s, with a wrong password in Config (over a URL without
//     credentials, and over one with another wrong password), with a wrong password in the
//     URL, and with the right one where no server listens. Its error names the server (the
//     host and port it tried) and shows none of the passwords, right or wrong.
func Credentials(t *testing.T, s Setup, username, password string) {
	withPassword := func(p string) string { return servers.WithUser(s.URL, username, p) }
	for i, c := range []struct {
		name, url, username, password string
	}{
		{"in the URL", withPassword(password), "", ""},
		{"in Config", s.URL, username, password},
		{"in Config over a wrong password in the URL", withPassword(urlWrongPassword), username, password},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := s.NewTopic(t)
			d := Open(t, s.Open, queue.Config{
				URL: c.url, Topic: topic, Group: "credentials-" + strconv.Itoa(i), Concurrency: 1,
				Username: c.username, Password: c.password,
			})
			Publish(t, d, topic, 1)
			if !s.NoLag {
				if _, err := d.Lag(t.Context()); err != nil {
					t.Errorf("Lag: %v", err)
				}
			}
			if got := Consume(t, d, nil).Wait(t, 1); string(got[0].Body) != Body(0) {
				t.Errorf("consumed %q, want %q", got[0].Body, Body(0))
			}
		})
	}

	topic := s.NewTopic(t)
	server := host(s.URL)
	closed := "127.0.0.1:" + strconv.Itoa(servers.FreePort(t))
	noServer := withHost(withPassword(password), closed)
	for _, c := range []struct {
		name, url, username, password, host string
	}{
		{"wrong password in Config", s.URL, username, configWrongPassword, server},
		{"wrong passwords in Config and in the URL", withPassword(urlWrongPassword), username, configWrongPassword, server},
		{"wrong password in the URL", withPassword(urlWrongPassword), "", "", server},
		{"no server", noServer, "", "", closed},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), refusal)
		_, err := s.Open(ctx, queue.Config{
			URL: c.url, Topic: topic, Group: "credentials", Concurrency: 1,
			Username: c.username, Password: c.password,
		})
		cancel()
		if err == nil {
			t.Errorf("%s: Open succeeded", c.name)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		for _, p := range []string{password, urlWrongPassword, configWrongPassword} {
			if strings.Contains(err.Error(), p) {
				t.Errorf("%s: the error shows the password %s: %v", c.name, p, err)
			}
		}
		if !strings.Contains(err.Error(), c.host) {
			t.Errorf("%s: the error does not name the server %s: %v", c.name, c.host, err)
		}
	}
}

// host is rawURL's host:port.
func host(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic("queuetest: " + err.Error())
	}
	return u.Host
}

// withHost is rawURL with its host:port replaced.
func withHost(rawURL, hostPort string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic("queuetest: " + err.Error())
	}
	u.Host = hostPort
	return u.String()
}

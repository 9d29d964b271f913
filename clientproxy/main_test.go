package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		args    string
		check   func(*options) bool
		wantErr string
	}{
		{"--server e.example:50002", func(o *options) bool {
			return o.listen == "127.0.0.1:50001" && o.cfg.Server == "e.example:50002" && o.cfg.TLS == nil &&
				o.cfg.Work == 131072 && o.cfg.MaxWork == 1<<24 && o.cfg.MaxTries == 4 && o.cfg.Resource == ""
		}, ""},
		// The prototype's flags.
		{"--listen_port=30001 --target_host=my.personal.server --target_port=40001", func(o *options) bool {
			return o.listen == "127.0.0.1:30001" && o.cfg.Server == "my.personal.server:40001"
		}, ""},
		{"--listen_ipv6 --listen_port 5 --target_host ::1 --target_port 7 --target_ipv6", func(o *options) bool {
			return o.listen == "[::1]:5" && o.cfg.Server == "[::1]:7" && o.cfg.Network == "tcp6"
		}, ""},
		{"-listen [::1]:9 -server [2001:db8::1]:50002 -tls", func(o *options) bool {
			return o.listen == "[::1]:9" && o.cfg.Server == "[2001:db8::1]:50002" && o.cfg.TLS != nil && !o.cfg.TLS.InsecureSkipVerify
		}, ""},
		{"--server h:1 --tls-fingerprint " + strings.Repeat("AB:", 31) + "AB", func(o *options) bool {
			return o.cfg.TLS != nil && o.cfg.TLS.InsecureSkipVerify && o.cfg.TLS.VerifyConnection != nil
		}, ""},
		{"--server h:1 --tls-server-name electrum.test", func(o *options) bool {
			return o.cfg.TLS != nil && o.cfg.TLS.ServerName == "electrum.test"
		}, ""},
		{"--server h:1 --work 64k --max-work 2^30 --workers 3 --max-tries 2 --resource x.y:1 -v", func(o *options) bool {
			return o.cfg.Work == 64000 && o.cfg.MaxWork == 1<<30 && o.cfg.Workers == 3 && o.cfg.MaxTries == 2 &&
				o.cfg.Resource == "x.y:1" && o.verbose
		}, ""},
		{"--server h:1 --work 20bits", func(o *options) bool { return o.cfg.Work == 1<<20 }, ""},
		{"--server h:1 --listen localhost:1", func(o *options) bool { return o.listen == "localhost:1" }, ""},
		{"--server h:1 --listen 0.0.0.0:1 --listen-any", func(o *options) bool { return o.listen == "0.0.0.0:1" }, ""},
		{"--server h:1 --listen 0.0.0.0:1", nil, "not a loopback address"},
		{"--server h:1 --listen :1", nil, "not a loopback address"},
		{"--server h:1 --listen 192.168.1.1:1", nil, "not a loopback address"},
		{"", nil, "no server"},
		{"--target_host h", nil, "needs --target_port"},
		{"--server h:1 --target_host h --target_port 2", nil, "not both"},
		{"--server h", nil, "missing port"},
		{"--server h:1 --work 2^25", nil, "above --max-work"},
		{"--server h:1 --work lots", nil, "want a number"},
		{"--server h:1 --tls-fingerprint abc", nil, "64 hex digits"},
		{"--server h:1 --resource 'a b'", nil, "resource"},
		{"--server h:1 --listen_ipv6 --listen 127.0.0.1:1", nil, "exclude each other"},
		{"--server h:1 extra", nil, "unexpected argument"},
	} {
		var out bytes.Buffer
		o, err := parseOptions(strings.Fields(strings.ReplaceAll(tc.args, "'a b'", "a_b!")), &out)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) && !strings.Contains(out.String(), tc.wantErr) {
				t.Errorf("%q: err %v, want one containing %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !tc.check(o) {
			t.Errorf("%q: options %+v", tc.args, o)
		}
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseOptions([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, name := range []string{"listen", "listen-any", "listen_port", "listen_ipv6", "server", "target_host", "target_port",
		"target_ipv6", "tls", "tls-fingerprint", "tls-insecure", "tls-server-name", "resource", "work", "max-work",
		"max-tries", "workers", "dial-timeout", "v"} {
		if !strings.Contains(out.String(), "\n  -"+name+" ") && !strings.Contains(out.String(), "\n  -"+name+"\n") &&
			!strings.Contains(out.String(), "\n  -"+name+"\t") {
			t.Errorf("--help does not explain -%s", name)
		}
	}
	if code := run(context.Background(), []string{"--help"}, io.Discard, nil); code != 0 {
		t.Errorf("--help exits %d", code)
	}
	if code := run(context.Background(), []string{"--bogus"}, io.Discard, nil); code != 2 {
		t.Errorf("a bad flag exits %d, want 2", code)
	}
}

// verifyingServer is a minimal hashcash server: it checks each line with
// package verify and answers accepted requests itself.
func verifyingServer(t *testing.T, resource string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pol := &verify.Policy{Resource: resource, DefaultPrice: 1 << 10, Window: time.Minute, Skew: time.Minute, Store: replay.NewMemory(1 << 10)}
	srv := testsupport.Serve(ln, func(c net.Conn) {
		v := pol.NewVerifier(nil)
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return
			}
			fwd, reply := v.Check(nil, line[:len(line)-1])
			if reply == nil {
				reply = append([]byte("accepted "), fwd...)
			}
			if _, err := c.Write(append(reply, '\n')); err != nil {
				return
			}
		}
	})
	t.Cleanup(srv.Close)
	return srv.Addr()
}

// TestRun runs the command end to end: it serves a wallet through a
// verifying server, logs the connection, and exits 0 on SIGTERM.
func TestRun(t *testing.T) {
	server := verifyingServer(t, "srv.test:1")
	var logs testsupport.SyncBuffer
	ready := make(chan net.Addr, 1)
	done := make(chan int, 1)
	go func() {
		// The server prices every method at 2^10; server.version costs
		// 0.5 in the handler's table, so a unit guess of 2^11 meets it.
		done <- run(context.Background(), []string{"--listen", "127.0.0.1:0", "--server", server,
			"--resource", "srv.test:1", "--work", "2^11", "-v"}, &logs, func(a net.Addr) { ready <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("run exited %d:\n%s", code, logs.String())
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	const reqLine = `{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`
	io.WriteString(c, reqLine+"\n")
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "accepted "+reqLine+"\n" {
		t.Fatalf("wallet got %q, %v", got, err)
	}
	c.Close()
	testsupport.WaitFor(t, "the close in the log", func() bool { return strings.Contains(logs.String(), "connection closed") })
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit status %d after SIGTERM", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	for _, want := range []string{"level=INFO msg=listening", "msg=\"connection open\"", "level=DEBUG msg=stamped", "method=server.version",
		"msg=\"connection closed\"", "stamped=1", "retried=0", "gave_up=0", "mint_mean=", "msg=stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestSelfTest: --self-test mints a stamp with this machine's kernel,
// checks it as a server would and exits 0, without needing a server.
func TestSelfTest(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--self-test", "--work", "4096", "--workers", "2"}, &out, nil); code != 0 {
		t.Fatalf("--self-test exited %d: %s", code, out.String())
	}
	if !strings.Contains(out.String(), "self-test: ok: kernel ") || !strings.Contains(out.String(), "work 2^12") {
		t.Fatalf("--self-test printed %q", out.String())
	}
}

//go:build linux

package testsupport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisOptions configures a redis-server that StartRedis starts.
type RedisOptions struct {
	// Password, if not empty, is required of clients (requirepass); Do
	// authenticates with it.
	Password string
	// Args are further redis-server arguments, such as "--maxmemory",
	// "2mb", "--maxmemory-policy", "allkeys-lru".
	Args []string
	// TLSCertFile and TLSKeyFile, if set, make the server also listen for
	// TLS on another free loopback port, TLSAddr, with this certificate
	// and key (PEM files). It asks clients for no certificate.
	TLSCertFile, TLSKeyFile string
}

// Redis is a redis-server for a test: a child process listening on a free
// loopback port and on a Unix socket, with neither snapshots nor an
// append-only file, killed when the test ends. It is linux-only: the child
// is also killed if the test binary dies (a parent-death signal), so that
// no server outlives a test that timed out.
type Redis struct {
	// Addr is the TCP address it listens on, 127.0.0.1:port.
	Addr string
	// Socket is the path of its Unix socket.
	Socket string
	// TLSAddr is the TCP address it listens on for TLS, if
	// RedisOptions asked for TLS.
	TLSAddr string

	opts    RedisOptions
	dir     string
	logPath string
	wait    time.Duration // how long start waits for PING

	mu   sync.Mutex
	proc *redisProcess // nil while killed
}

// redisProcess is one run of the server.
type redisProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its wait error, once done
}

// StartRedis starts a redis-server (which must be on PATH), waits until it
// answers PING, and kills it when the test ends. It fails the test if the
// server does not start.
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	r, err := LaunchRedis(opts, waitBudget(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// LaunchRedis is StartRedis for a program that is not a test, such as a
// benchmark command: it waits at most wait for the server to answer PING,
// and the caller must Close it.
func LaunchRedis(opts RedisOptions, wait time.Duration) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (apt-get install redis-server): %w", err)
	}
	// A short directory of its own: a Unix socket's path is limited to
	// about 100 bytes, which a test's TempDir can exceed.
	dir, err := os.MkdirTemp("", "redis")
	if err != nil {
		return nil, err
	}
	r := &Redis{Socket: filepath.Join(dir, "redis.sock"), opts: opts, dir: dir, logPath: filepath.Join(dir, "redis.log"), wait: wait}
	// The port was free a moment ago; another process may take it first,
	// so try a few.
	for attempt := 1; ; attempt++ {
		r.Addr, err = FindFreeAddr("127.0.0.1")
		if err == nil && opts.TLSCertFile != "" {
			r.TLSAddr, err = FindFreeAddr("127.0.0.1")
		}
		if err != nil {
			r.Close()
			return nil, err
		}
		err = r.start(bin)
		if err == nil {
			return r, nil
		}
		if attempt == 3 || !strings.Contains(r.Log(), "Address already in use") {
			err = fmt.Errorf("starting redis-server on %s: %w\n%s", r.Addr, err, r.Log())
			r.Close()
			return nil, err
		}
	}
}

// Close kills the server, if it runs, and removes its directory.
func (r *Redis) Close() {
	r.kill()
	os.RemoveAll(r.dir)
}

// start runs the server on r.Addr and waits until it answers PING.
func (r *Redis) start(bin string) error {
	_, port, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return err
	}
	args := []string{
		"--port", port, "--bind", "127.0.0.1",
		"--unixsocket", r.Socket, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--daemonize", "no", "--enable-debug-command", "local",
	}
	if r.opts.Password != "" {
		args = append(args, "--requirepass", r.opts.Password)
	}
	if r.TLSAddr != "" {
		_, tlsPort, err := net.SplitHostPort(r.TLSAddr)
		if err != nil {
			return err
		}
		args = append(args, "--tls-port", tlsPort, "--tls-cert-file", r.opts.TLSCertFile,
			"--tls-key-file", r.opts.TLSKeyFile, "--tls-auth-clients", "no")
	}
	args = append(args, r.opts.Args...)
	logf, err := os.OpenFile(r.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = r.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &redisProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()

	exited := func() error {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited: %v", p.err)
		default:
			return nil
		}
	}
	err = Poll(context.Background(), "redis-server answering PING on "+r.Addr, r.wait, 10*time.Millisecond, func() (bool, error) {
		if err := exited(); err != nil {
			return false, err
		}
		return r.ping(), nil
	})
	if err != nil {
		r.kill()
	}
	return err
}

// ping reports whether the server answers PING (or says that it needs a
// password first, which it does only once it is ready).
func (r *Redis) ping() bool {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

// Kill kills the server with SIGKILL, as a crash would, and waits until it
// has exited.
func (r *Redis) Kill(t testing.TB) {
	t.Helper()
	if !r.kill() {
		t.Fatal("redis-server: Kill while not running")
	}
}

// kill kills the server if it runs, waits for it, and reports whether it
// ran.
func (r *Redis) kill() bool {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p == nil {
		return false
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done // SIGKILL cannot be caught: the wait is short
	return true
}

// Restart starts the server again on the same port and socket, after
// Kill, with nothing of what it held before.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	running := r.proc != nil
	r.mu.Unlock()
	if running {
		t.Fatal("redis-server: Restart while running")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.start(bin); err != nil {
		t.Fatalf("restarting redis-server on %s: %v\n%s", r.Addr, err, r.Log())
	}
}

// Log returns what the server has logged.
func (r *Redis) Log() string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read the redis-server log: %v)", err)
	}
	return string(b)
}

// RedisError is an error reply of the server.
type RedisError string

func (e RedisError) Error() string { return string(e) }

// Do sends one command on a connection of its own, authenticated with
// the password if there is one, and returns the reply: a string (simple or
// bulk), an int64, nil (a null reply), a []any (an array), or a
// RedisError. It gives up when ctx ends.
func (r *Redis) Do(ctx context.Context, args ...string) (any, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	rd := bufio.NewReader(c)
	if r.opts.Password != "" {
		if _, err := c.Write(appendCommand(nil, "AUTH", r.opts.Password)); err != nil {
			return nil, err
		}
		if reply, err := readReply(rd); err != nil {
			return nil, err
		} else if e, ok := reply.(RedisError); ok {
			return nil, fmt.Errorf("AUTH: %w", e)
		}
	}
	if _, err := c.Write(appendCommand(nil, args...)); err != nil {
		return nil, err
	}
	return readReply(rd)
}

// MustDo is Do for a test, bounded by WaitTimeout: it fails the test on an
// error, an error reply included.
func (r *Redis) MustDo(t testing.TB, args ...string) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBudget(t))
	defer cancel()
	reply, err := r.Do(ctx, args...)
	if err == nil {
		if e, ok := reply.(RedisError); ok {
			err = e
		}
	}
	if err != nil {
		t.Fatalf("redis %s: %v", strings.Join(args, " "), err)
	}
	return reply
}

// appendCommand appends args as a RESP array of bulk strings.
func appendCommand(dst []byte, args ...string) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, "\r\n"...)
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, "\r\n"...)
		dst = append(dst, a...)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// readReply reads one RESP2 reply.
func readReply(rd *bufio.Reader) (any, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("malformed reply line %q", line)
	}
	kind, text := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return text, nil
	case '-':
		return RedisError(text), nil
	case ':':
		return strconv.ParseInt(text, 10, 64)
	case '$':
		n, err := strconv.Atoi(text)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("malformed bulk length %q", text)
		}
		if n == -1 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(text)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("malformed array length %q", text)
		}
		if n == -1 {
			return nil, nil
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readReply(rd); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, errors.New("unknown reply type " + strconv.Quote(line[:1]))
}

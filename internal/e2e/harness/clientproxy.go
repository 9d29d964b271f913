package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// ClientProxyConfig are the clientproxy flags the harness sets.
type ClientProxyConfig struct {
	// Server is the address clientproxy connects to.
	Server string
	// Resource is the resource name to mint for (--resource).
	Resource string
	// Work is the first guess of the price (--work), e.g. "1k".
	Work string
	// Fingerprint, if set, pins the server's TLS certificate
	// (--tls-fingerprint, which implies --tls).
	Fingerprint string
	// Workers is --workers; 0 leaves the default.
	Workers int
	// Extra flags appended as given.
	Extra []string
}

// ClientProxy is a running clientproxy process.
type ClientProxy struct {
	*Process
	// Addr is where it listens for wallets.
	Addr string
}

var listeningRE = regexp.MustCompile(`msg=listening listen=(\S+)`)

// StartClientProxy runs the clientproxy binary with -v on a free loopback
// port (it is told to listen on 127.0.0.1:0 and its "listening" log line is
// read for the port), logging to dir/clientproxy.log.
func StartClientProxy(ctx context.Context, bin, dir string, c ClientProxyConfig) (*ClientProxy, error) {
	args := []string{"--listen", "127.0.0.1:0", "--server", c.Server, "-v"}
	if c.Resource != "" {
		args = append(args, "--resource", c.Resource)
	}
	if c.Work != "" {
		args = append(args, "--work", c.Work)
	}
	if c.Fingerprint != "" {
		args = append(args, "--tls-fingerprint", c.Fingerprint)
	}
	if c.Workers > 0 {
		args = append(args, "--workers", fmt.Sprint(c.Workers))
	}
	args = append(args, c.Extra...)
	logPath := filepath.Join(dir, "clientproxy.log")
	p, err := StartProcess("clientproxy", logPath, bin, args, nil)
	if err != nil {
		return nil, err
	}
	var addr string
	err = testsupport.Poll(ctx, "clientproxy listening", 15*time.Second, 20*time.Millisecond, func() (bool, error) {
		if done, err := p.Exited(); done {
			return false, fmt.Errorf("clientproxy exited (%v); log:\n%s", err, p.Tail(20))
		}
		b, _ := os.ReadFile(logPath)
		if m := listeningRE.FindSubmatch(b); m != nil {
			addr = string(m[1])
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	return &ClientProxy{Process: p, Addr: addr}, nil
}

// Mint is one "stamped" log line of clientproxy -v.
type Mint struct {
	Method   string
	Work     uint64
	Attempt  int
	Duration time.Duration
	Hashes   uint64
	// At is when the stamp was done (the log line's time, to the
	// millisecond); zero if the line has no time.
	At time.Time
}

// Mints parses the per-stamp lines of clientproxy's -v log (slog text
// format: msg=stamped … mint=<duration> hashes=<n> method=<m> work=<w>).
func (c *ClientProxy) Mints() ([]Mint, error) { return ParseMints(c.LogPath) }

// ParseMints reads the "stamped" lines of a clientproxy -v log.
func ParseMints(logPath string) ([]Mint, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Mint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, " msg=stamped ") {
			continue
		}
		kv := logfmt(line)
		var m Mint
		m.Method = kv["method"]
		m.Work, _ = strconv.ParseUint(kv["work"], 10, 64)
		m.Attempt, _ = strconv.Atoi(kv["attempt"])
		m.Hashes, _ = strconv.ParseUint(kv["hashes"], 10, 64)
		d, err := time.ParseDuration(kv["mint"])
		if err != nil {
			return nil, fmt.Errorf("clientproxy log line %q: mint: %v", line, err)
		}
		m.Duration = d
		if ts, ok := kv["time"]; ok {
			if m.At, err = time.Parse(time.RFC3339Nano, ts); err != nil {
				return nil, fmt.Errorf("clientproxy log line %q: time: %v", line, err)
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// logfmt splits a slog text line into its key=value pairs (values may be
// quoted; quoted values are returned without unescaping beyond the quotes).
func logfmt(line string) map[string]string {
	kv := map[string]string{}
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq < 0 {
			break
		}
		key := line[i : i+eq]
		i += eq + 1
		var val string
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			val = line[i+1 : min(j, len(line))]
			i = j + 1
		} else {
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			val = line[i : i+j]
			i += j
		}
		kv[key] = val
	}
	return kv
}

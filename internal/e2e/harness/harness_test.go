package harness

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

func mint(t *testing.T, line string, work uint64, resource string) []byte {
	t.Helper()
	stamped, err := stamp.AppendStamped(context.Background(), nil, []byte(line), stamp.Stamp{Work: work, Time: time.Now().Unix(), Resource: resource}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return stamped
}

func TestCheckStampedLine(t *testing.T) {
	const req = `{"jsonrpc":"2.0","method":"server.banner","id":7}`
	line := mint(t, req, 1000, "r:1")
	body, stamps, err := CheckStampedLine(line, "r:1")
	if err != nil || string(body) != req || len(stamps) != 1 || stamps[0].Work != 1000 {
		t.Fatalf("CheckStampedLine(%s) = %s, %v, %v", line, body, stamps, err)
	}
	if _, _, err := CheckStampedLine(line, "r:2"); err == nil {
		t.Error("wrong resource accepted")
	}
	if _, _, err := CheckStampedLine([]byte(req), "r:1"); err == nil {
		t.Error("line without stamp accepted")
	}
	// Another body under the same stamp: the digest no longer proves the
	// work. It still does by chance, with probability 1/work, so the stamp
	// is minted again until the tampered line's digest misses.
	tampered := tamperedMiss(t, req, 1000, "r:1")
	if _, _, err := CheckStampedLine(tampered, "r:1"); err == nil {
		t.Error("tampered body accepted")
	}
}

// tamperedMiss returns req stamped, then with its id changed, such that the
// stamp does not prove its work for the changed body.
func tamperedMiss(t *testing.T, req string, work uint64, resource string) []byte {
	t.Helper()
	for range 100 {
		line := mint(t, req, work, resource)
		var l rpcline.Line
		if err := rpcline.Scan(line, stamp.Member, &l); err != nil {
			t.Fatal(err)
		}
		text, _ := rpcline.RawStringValue(l.Objects[0].Stamp)
		st, err := stamp.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		h := stamp.BodyHash([]byte(strings.Replace(req, `"id":7`, `"id":8`, 1)))
		if d := st.Digest(&h, nil); !stamp.Meets(&d, work) {
			return []byte(strings.Replace(string(line), `"id":7`, `"id":8`, 1))
		}
	}
	t.Fatal("every tampered stamp still proved its work")
	return nil
}

func TestInterleaving(t *testing.T) {
	b := func(s ...string) [][]byte {
		var out [][]byte
		for _, x := range s {
			out = append(out, []byte(x))
		}
		return out
	}
	conns := [][][]byte{b("a", "b", "c"), b("a", "x")}
	n, err := Interleaving(b("a", "a", "x", "b"), conns)
	if err != nil || n[0] != 2 || n[1] != 2 {
		t.Fatalf("got %v, %v", n, err)
	}
	if _, err := Interleaving(b("a", "c"), conns); err == nil {
		t.Fatal("out-of-order line accepted")
	}
	if d := MultisetDiff("s", b("a", "b"), "w", b("b", "a")); d != "" {
		t.Fatal(d)
	}
	if d := MultisetDiff("s", b("a", "a"), "w", b("a")); !strings.Contains(d, "1 lines only in s") {
		t.Fatal(d)
	}
}

func TestSats(t *testing.T) {
	for in, want := range map[string]int64{"50": 5_000_000_000, "50.": 5_000_000_000, "49.999746": 4_999_974_600, "-0.000254": -25_400, "0.00000001": 1} {
		if got, err := Sats(in); err != nil || got != want {
			t.Errorf("Sats(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := Sats("1.123456789"); err == nil {
		t.Error("9 decimals accepted")
	}
}

func TestParseMints(t *testing.T) {
	log := `time=2026-11-23T23:01:49.636Z level=INFO msg=listening listen=127.0.0.1:43841 server=127.0.0.1:42241
time=2026-11-23T23:01:49.654Z level=DEBUG msg=stamped wallet=127.0.0.1:60252 seq=0 attempt=1 mint=11.651ms hashes=100292 method=server.version work=64000
time=2026-11-23T23:01:49.664Z level=INFO msg="connection closed" wallet=127.0.0.1:60252 reason="wallet closed the connection"
time=2026-11-23T23:01:49.664Z level=DEBUG msg=stamped wallet=127.0.0.1:60252 seq=1 attempt=2 mint=850µs hashes=25487 method=blockchain.headers.subscribe work=64000
`
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParseMints(p)
	if err != nil || len(m) != 2 {
		t.Fatalf("ParseMints: %v, %v", m, err)
	}
	at := time.Date(2026, 11, 23, 23, 1, 49, 654_000_000, time.UTC)
	if m[0] != (Mint{Method: "server.version", Work: 64000, Attempt: 1, Duration: 11651 * time.Microsecond, Hashes: 100292, At: at}) {
		t.Errorf("first mint %+v", m[0])
	}
	if m[1].Attempt != 2 || m[1].Duration != 850*time.Microsecond {
		t.Errorf("second mint %+v", m[1])
	}
	if m := listeningRE.FindStringSubmatch(log); m == nil || m[1] != "127.0.0.1:43841" {
		t.Errorf("listening address: %v", m)
	}
}

func TestRelayRecords(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo := testsupport.Serve(up, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			c.Write([]byte("echo " + l))
		}
	})
	defer echo.Close()
	r, err := NewRelay(up.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// The second line arrives in two pieces: its second piece is written
	// once the relay has read, and passed on, the first line.
	c.Write([]byte("one\ntw"))
	testsupport.WaitFor(t, "the relay to pass on the first line", func() bool { return len(r.Sent()) == 1 })
	c.Write([]byte("o\n"))
	br := bufio.NewReader(c)
	for range 2 {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	sent := r.Sent()
	if len(sent) != 2 || string(sent[0].Data) != "one" || string(sent[1].Data) != "two" || sent[0].Conn != 1 {
		t.Fatalf("sent %+v", sent)
	}
	if got := r.Received(); len(got) != 2 || string(got[1].Data) != "echo two" {
		t.Fatalf("received %+v", got)
	}
	if fb := r.Conns()[0].FirstBytes(); string(fb) != "one\ntwo\n" {
		t.Fatalf("first bytes %q", fb)
	}
}

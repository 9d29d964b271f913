//go:build systemtest

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/e2e/harness"
	"go.uber.org/goleak"
)

var (
	caddyBin       string
	clientproxyBin string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if err := setup(tmp); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: e2e setup: %v\n", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		// Every relay, server and process watcher must be gone.
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: e2e: leaked goroutines: %v\n", err)
			return 1
		}
	}
	return code
}

func setup(tmp string) error {
	ctx := context.Background()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...) }
	if err := harness.CheckElectrum(ctx); err != nil {
		return err
	}
	repo, err := harness.RepoRoot()
	if err != nil {
		return err
	}

	clientproxyBin = os.Getenv("CLIENTPROXY_BIN")
	if clientproxyBin == "" {
		clientproxyBin = filepath.Join(tmp, "clientproxy")
		cmd := exec.Command("go", "build", "-o", clientproxyBin, "./clientproxy")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./clientproxy: %v\n%s", err, out)
		}
	} else if _, err := os.Stat(clientproxyBin); err != nil {
		return fmt.Errorf("CLIENTPROXY_BIN: %v", err)
	}

	caddyBin = os.Getenv("CADDY_BIN")
	if caddyBin == "" {
		caddyBin = filepath.Join(tmp, "caddy")
		logf("CADDY_BIN not set: building Caddy with xcaddy from %s (set CADDY_BIN to skip this)", repo)
		if err := harness.BuildCaddy(ctx, caddyBin, repo, logf); err != nil {
			return fmt.Errorf("building caddy with xcaddy: %v", err)
		}
	} else if _, err := os.Stat(caddyBin); err != nil {
		return fmt.Errorf("CADDY_BIN: %v", err)
	}
	return harness.CheckCaddyModule(ctx, caddyBin)
}

// testContext returns a context that ends a little before the test's
// deadline, so that bounded waits fail with a message instead of the test
// binary being killed.
func testContext(t *testing.T) context.Context {
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

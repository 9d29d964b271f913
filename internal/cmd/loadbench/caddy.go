package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"

	_ "github.com/electrum-hashcash/electrum-hashcash/caddyhashcash"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// caddyConfig returns the Caddy JSON config of the paths: layer-4 servers
// proxying to upstream, plain at plainAddr (b), with the hashcash handler
// first at hashAddr (c, saturated runs) and at pacedAddr (c, paced runs).
// The saturated server has a short window (see stampWindow); the paced one
// has the handler's defaults but for the price, and its own resource so
// that it has its own replay store. Both let any number of connections
// come from one network (loadbench dials them all from 127.0.0.1). With
// redis set (the address of a Redis server), the same two servers with the
// Redis store instead of the in-memory one listen at redis.saturated and
// redis.paced (path r).
func caddyConfig(plainAddr, hashAddr, pacedAddr, upstream string, price uint64, capacity int, redis redisPaths) map[string]any {
	proxy := map[string]any{"handler": "proxy", "upstreams": []any{map[string]any{"dial": []string{upstream}}}}
	// Every connection comes from 127.0.0.1: no per-network limit.
	hashcash := map[string]any{
		"handler": "hashcash", "resource": resource, "price": price, "replay_capacity": capacity,
		"window": stampWindow.String(), "max_skew": stampSkew.String(), "max_conns_per_prefix": -1,
	}
	paced := map[string]any{"handler": "hashcash", "resource": pacedResource, "price": price, "max_conns_per_prefix": -1}
	server := func(listen string, handlers ...any) map[string]any {
		return map[string]any{"listen": []string{listen}, "routes": []any{map[string]any{"handle": handlers}}}
	}
	servers := map[string]any{
		"plain":    server(plainAddr, proxy),
		"hashcash": server(hashAddr, hashcash, proxy),
		"paced":    server(pacedAddr, paced, proxy),
	}
	if redis.server != "" {
		store := map[string]any{"module": "redis", "address": redis.server}
		withStore := func(h map[string]any, res string) map[string]any {
			h = maps.Clone(h)
			h["resource"], h["store"] = res, store
			delete(h, "replay_capacity") // the in-memory store's
			return h
		}
		servers["redis"] = server(redis.saturated, withStore(hashcash, redisResource), proxy)
		servers["redispaced"] = server(redis.paced, withStore(paced, redisPacedResource), proxy)
	}
	return map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps":    map[string]any{"layer4": map[string]any{"servers": servers}},
	}
}

// redisPaths are the listen addresses of path (r), the hashcash servers
// with the Redis store at server; all empty without path (r).
type redisPaths struct {
	server           string // the Redis server's address
	saturated, paced string
}

// caddyServer is caddy serving paths (b) and (c).
type caddyServer interface {
	// cpu returns the CPU time caddy has used, or -1 if it is this process.
	cpu() time.Duration
	// rss returns caddy's resident memory (this process's if in-process).
	rss() int64
	describe() string
	stop()
}

// startCaddy starts caddy with cfg: in this process if bin is empty,
// otherwise by running bin, and waits until it listens.
func startCaddy(bin string, cfg map[string]any) (caddyServer, error) {
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return nil, err
	}
	cfg["storage"] = map[string]any{"module": "file_system", "root": filepath.Join(dir, "storage")}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, s := range cfg["apps"].(map[string]any)["layer4"].(map[string]any)["servers"].(map[string]any) {
		addrs = append(addrs, s.(map[string]any)["listen"].([]string)...)
	}
	var srv caddyServer
	if bin == "" {
		if err := caddy.Load(raw, true); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("loading caddy config: %w", err)
		}
		srv = &inProcess{dir: dir}
	} else {
		c, err := startChild(bin, dir, raw)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		srv = c
	}
	for _, addr := range addrs {
		if err := testsupport.AwaitListening(context.Background(), addr, 10*time.Second, nil); err != nil {
			srv.stop()
			return nil, fmt.Errorf("caddy: %w", err)
		}
	}
	return srv, nil
}

// inProcess is caddy loaded into this process.
type inProcess struct{ dir string }

func (*inProcess) cpu() time.Duration { return -1 }

func (*inProcess) rss() int64 {
	n, _ := rssBytes("self")
	return n
}

func (*inProcess) describe() string {
	return "in this process (caddy.Load); CPU and RSS are the whole process's: load generator, upstream and caddy"
}

func (p *inProcess) stop() {
	if err := caddy.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench: stopping caddy:", err)
	}
	os.RemoveAll(p.dir)
}

// child is caddy running as a child process.
type child struct {
	bin string
	dir string
	cmd *exec.Cmd
}

func startChild(bin, dir string, cfg []byte) (*child, error) {
	path := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "run", "--config", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "HOME="+dir)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return &child{bin: bin, dir: dir, cmd: cmd}, nil
}

func (c *child) cpu() time.Duration {
	d, err := procCPU(c.cmd.Process.Pid)
	if err != nil {
		return -1
	}
	return d
}

func (c *child) rss() int64 {
	n, _ := rssBytes(strconv.Itoa(c.cmd.Process.Pid))
	return n
}

func (c *child) describe() string {
	return fmt.Sprintf("child process %s (pid %d); CPU is loadbench's and caddy's, caddy CPU and RSS are caddy's own", c.bin, c.cmd.Process.Pid)
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	if log, err := os.ReadFile(filepath.Join(c.dir, "caddy.log")); err == nil && len(log) > 0 {
		os.Stderr.Write(log)
	}
	os.RemoveAll(c.dir)
}

package main

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// startRedis starts path (r)'s redis-server, as the Redis store's tests
// do: on a free loopback port, persistence off, killed with loadbench. It
// returns its address, a function that stops it, and a line describing it
// for the report.
func startRedis() (addr string, stop func(), line string, err error) {
	r, err := testsupport.LaunchRedis(testsupport.RedisOptions{
		Args: []string{"--maxmemory-policy", "noeviction"},
	}, 30*time.Second)
	if err != nil {
		return "", nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	version := "version unknown"
	if info, err := r.Do(ctx, "INFO", "server"); err == nil {
		if m := regexp.MustCompile(`redis_version:(\S+)`).FindStringSubmatch(fmt.Sprint(info)); m != nil {
			version = m[1]
		}
	}
	return r.Addr, r.Close, fmt.Sprintf("redis-server %s started by loadbench on %s, persistence off, maxmemory-policy noeviction", version, r.Addr), nil
}

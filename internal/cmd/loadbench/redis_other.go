//go:build !linux

package main

import "errors"

// startRedis needs Linux (testsupport.LaunchRedis); elsewhere, give path
// (r) a Redis with -redis.
func startRedis() (addr string, stop func(), line string, err error) {
	return "", nil, "", errors.New("starting a redis-server needs Linux: give one with -redis")
}

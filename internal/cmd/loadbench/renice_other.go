//go:build !linux

package main

import "errors"

// lowerThread is only available on Linux: elsewhere run with
// -paying-idle=false -paying-nice 0.
func lowerThread(idle bool, nice int) error {
	if !idle && nice == 0 {
		return nil
	}
	return errors.New("per-thread priority needs Linux: use -paying-idle=false -paying-nice 0")
}

//go:build !linux

package main

import "errors"

// reniceThread is only available on Linux: elsewhere run with
// -paying-nice 0.
func reniceThread(int) error {
	return errors.New("per-thread niceness needs Linux: use -paying-nice 0")
}

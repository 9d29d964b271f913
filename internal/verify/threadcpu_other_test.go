//go:build !linux

package verify_test

// threadCPU reports that the calling thread's CPU time cannot be read here.
func threadCPU() (int64, bool) { return 0, false }

//go:build !linux

package testsupport

// ThreadCPU reports that the calling thread's CPU time cannot be read here.
func ThreadCPU() (int64, bool) { return 0, false }

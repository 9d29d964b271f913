//go:build linux

package testsupport

import (
	"syscall"
	"unsafe"
)

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID.
const clockThreadCPUTime = 3

// ThreadCPU returns the CPU time the calling thread has used, in
// nanoseconds, and whether it could be read. Unlike the wall clock it does
// not run while the thread waits for a core, so a benchmark that times
// single operations with it sees their work rather than the scheduler.
func ThreadCPU() (int64, bool) {
	var ts syscall.Timespec
	_, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return ts.Nano(), true
}

//go:build linux

package stamp_test

import (
	"context"
	"runtime"
	"syscall"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// processCPU returns the CPU time the whole process has used, in ns.
func processCPU(t *testing.T) int64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestOneWorkerMintsOnCallersThread: with one worker, Mint does its work on
// the calling thread, so that a caller that lowered its thread's priority
// (loadbench's flooders) mints at that priority.
func TestOneWorkerMintsOnCallersThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var body [32]byte
	s := stamp.Stamp{Resource: "electrum.test:50002", Time: 1700000000, Work: 1 << 20}
	thread0, ok := testsupport.ThreadCPU()
	if !ok {
		t.Fatal("cannot read the thread's CPU time")
	}
	process0 := processCPU(t)
	var attempts uint64
	for i := range 8 { // about 8 M attempts in all
		s.Time += int64(i)
		n, err := stamp.Mint(context.Background(), &s, &body, 1)
		if err != nil {
			t.Fatal(err)
		}
		attempts += n
	}
	thread1, _ := testsupport.ThreadCPU()
	process := processCPU(t) - process0
	thread := thread1 - thread0
	t.Logf("%d attempts: %.1f ms of CPU on the calling thread, %.1f ms in the process", attempts, float64(thread)/1e6, float64(process)/1e6)
	// Everything but the runtime's own background work is the caller's.
	if thread < process/2 {
		t.Fatalf("the calling thread used %.1f ms of the %.1f ms the process did while minting: the work ran elsewhere",
			float64(thread)/1e6, float64(process)/1e6)
	}
}

package main

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// lowerThread lowers the scheduling priority of the calling OS thread: to
// SCHED_IDLE if idle (it then runs only on a core that no other thread
// wants), else to niceness nice (on Linux, setpriority with a thread id
// applies to that thread only). The caller must have locked its goroutine
// to the thread.
func lowerThread(idle bool, nice int) error {
	if idle {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			return fmt.Errorf("sched_setattr SCHED_IDLE: %w", err)
		}
		return nil
	}
	if nice == 0 {
		return nil
	}
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice); err != nil {
		return fmt.Errorf("setpriority %d: %w", nice, err)
	}
	return nil
}

package main

import "syscall"

// reniceThread sets the niceness of the calling OS thread (on Linux,
// setpriority with a thread id applies to that thread only). The caller
// must have locked its goroutine to the thread.
func reniceThread(nice int) error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}

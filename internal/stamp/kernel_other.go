//go:build (!amd64 && !arm64) || purego

package stamp

// archKernels returns no kernels: this architecture has only the generic
// one (or the purego build tag leaves out the assembly).
func archKernels() []*kernel { return nil }

//go:build !purego

package replay

// prefetchSlot asks the CPU to bring the cache lines of slot e into its
// cache without waiting for them (prefetch_amd64.s, hand-written: Go has
// no prefetch intrinsic). It changes nothing but timing.
//
//go:noescape
func prefetchSlot(e *entry)

// havePrefetch reports whether prefetch issues prefetchSlot. A variable so
// that benchmarks can compare with the plain version.
var havePrefetch = true

// prefetch is prefetchSlot where havePrefetch is set.
func prefetch(e *entry) {
	if havePrefetch {
		prefetchSlot(e)
	}
}

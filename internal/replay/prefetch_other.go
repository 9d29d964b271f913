//go:build !amd64 || purego

package replay

// havePrefetch is false: there is no hand-written prefetch here. A
// variable so that it matches amd64's.
var havePrefetch = false

// prefetch does nothing: the pending slot write is then done by the next
// lock of its shard without its line fetched ahead, which is correct, and
// may wait for memory.
func prefetch(*entry) {}

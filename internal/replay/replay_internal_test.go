package replay

import (
	"testing"
	"unsafe"
)

// TestShardIsOneCacheLine checks that a shard, its lock and its pending
// write fill one 64-byte cache line, as the comment on shard.pending says.
func TestShardIsOneCacheLine(t *testing.T) {
	if n := unsafe.Sizeof(shard{}); n != 64 {
		t.Fatalf("a shard takes %d bytes, want 64", n)
	}
}

// TestPendingWriteDoneByNextLock checks that a new key's slot is written
// by the next lock of its shard, and that every path reads it by then: a
// second claim of the key is refused, and a release forgets it.
func TestPendingWriteDoneByNextLock(t *testing.T) {
	m := NewMemory(1000)
	key := Key{7, 1, 2, 3}
	if err := m.Claim(key, 10, 20); err != nil {
		t.Fatal(err)
	}
	s := m.shardOf(key)
	if s.pending.slot == nil || s.pending.e.key != key {
		t.Fatalf("no pending write of the new key: %+v", s.pending)
	}
	if err := m.Claim(key, 11, 21); err != ErrReplayed {
		t.Fatalf("second claim: %v, want ErrReplayed", err)
	}
	if s.pending.slot != nil {
		t.Fatal("pending write still there after the next lock")
	}
	other := Key{7, 9} // the same shard
	if err := m.Claim(other, 11, 21); err != nil {
		t.Fatal(err)
	}
	m.Release(other)
	if err := m.Claim(other, 11, 21); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	if m.Len() != 2 {
		t.Fatalf("Len %d, want 2", m.Len())
	}
}

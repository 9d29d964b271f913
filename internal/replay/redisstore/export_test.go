package redisstore

import "github.com/electrum-hashcash/electrum-hashcash/internal/replay"

// ForgetRecent makes s forget its latest claim of key, as when later
// claims took its slot, so that Release falls back to s's token.
func ForgetRecent(s *Store, key replay.Key) { s.forget(key) }

// Token returns the token of the values s writes: value >> 21.
func Token(s *Store) int64 { return int64(s.token) }

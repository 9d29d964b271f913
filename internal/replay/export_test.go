package replay

// SetTableKeys sets how many keys a table of a shard is sized for, for
// stores made until restore is called.
func SetTableKeys(n int) (restore func()) {
	old := tableKeys
	tableKeys = n
	return func() { tableKeys = old }
}

// SetPrefetch sets whether Memory prefetches the slot of a new key (where
// it can), until restore is called.
func SetPrefetch(on bool) (restore func()) {
	old := havePrefetch
	havePrefetch = on && old
	return func() { havePrefetch = old }
}

package replay

// SetTableKeys sets how many keys a table of a shard is sized for, for
// stores made until restore is called.
func SetTableKeys(n int) (restore func()) {
	old := tableKeys
	tableKeys = n
	return func() { tableKeys = old }
}

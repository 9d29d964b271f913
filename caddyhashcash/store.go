package caddyhashcash

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
)

// storeNamespace is the module namespace of the handler's store option.
const storeNamespace = "layer4.handlers.hashcash.stores"

// ReplayStore is a module of namespace layer4.handlers.hashcash.stores: the
// handler's store option, where the stamps it has accepted are recorded so
// that each is accepted once. The modules are this package's: memory (the
// default) and redis.
type ReplayStore interface {
	caddy.Module
	// ReplayStore returns the store the handler's connections claim stamps
	// in; local is the in-process store its resource's handlers share.
	ReplayStore(local *replay.Memory) replay.Store
}

// MemoryStore keeps the stamps in the caddy process, shared by every
// handler with the same resource and kept across config reloads; a restart
// forgets them, and another caddy process does not see them. It holds up
// to the handler's replay_capacity stamps. It is the default store.
type MemoryStore struct{}

// CaddyModule returns the Caddy module information.
func (MemoryStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  storeNamespace + ".memory",
		New: func() caddy.Module { return new(MemoryStore) },
	}
}

// ReplayStore returns local, the resource's in-process store.
func (MemoryStore) ReplayStore(local *replay.Memory) replay.Store { return local }

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. It has no
// options:
//
//	store memory
func (*MemoryStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store's name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(d.Nesting()) {
		return d.Errf("store memory has no options; replay_capacity sizes it")
	}
	return nil
}

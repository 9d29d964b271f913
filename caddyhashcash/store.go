package caddyhashcash

import (
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/electrum-hashcash/electrum-hashcash/internal/connlimit"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
)

// replayStores holds one replay store per resource, shared by every handler
// for that resource and kept across config reloads for as long as any
// handler uses it, the way Caddy's own modules keep state between loads.
var replayStores = caddy.NewUsagePool()

// sharedReplayStore is a replay.Memory with a janitor that sweeps expired
// stamps, registered in replayStores under its resource. It also holds the
// resource's per-prefix connection counts, which must carry over a reload
// as the connections they count do.
type sharedReplayStore struct {
	*replay.Memory
	conns    *connlimit.Limiter
	resource string
	stop     chan struct{}
	done     sync.WaitGroup
}

// loadReplayStore returns the store for resource, creating it with the given
// capacity if no handler holds one. An existing store keeps the capacity it
// was created with.
func loadReplayStore(resource string, capacity int, window time.Duration) (*sharedReplayStore, error) {
	v, _, err := replayStores.LoadOrNew(resource, func() (caddy.Destructor, error) {
		s := &sharedReplayStore{
			Memory:   replay.NewMemory(capacity),
			conns:    connlimit.New(),
			resource: resource,
			stop:     make(chan struct{}),
		}
		interval := max(window/4, time.Second)
		s.done.Go(func() { s.sweepEvery(interval) })
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*sharedReplayStore), nil
}

func (s *sharedReplayStore) sweepEvery(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.Sweep(now.Unix())
		}
	}
}

// release gives up one handler's use of the store.
func (s *sharedReplayStore) release() error {
	_, err := replayStores.Delete(s.resource)
	return err
}

// Destruct stops the janitor when the last handler lets go of the store.
func (s *sharedReplayStore) Destruct() error {
	close(s.stop)
	s.done.Wait()
	return nil
}

package main

import (
	"sync"
	"sync/atomic"
)

// stamps records one instant per event number, the first one set, in arrays without
// pointers. A map of a million ids to times made the benchmark's garbage collector scan it on
// every cycle and its mutex serialize the subscriber, all on the cores the broker needs.
type stamps struct {
	mu     sync.Mutex // taken only to add a chunk
	chunks [maxChunks]atomic.Pointer[[chunkSize]atomic.Int64]
}

const (
	chunkBits = 16
	chunkSize = 1 << chunkBits
	maxChunks = 1 << 12 // 268M events per run: far beyond what two cores send
)

// set records at (Unix nanoseconds, never 0) for event n unless it has one already.
func (s *stamps) set(n, at int64) {
	if n < 0 || n>>chunkBits >= maxChunks {
		return
	}
	c := s.chunks[n>>chunkBits].Load()
	if c == nil {
		s.mu.Lock()
		if c = s.chunks[n>>chunkBits].Load(); c == nil {
			c = new([chunkSize]atomic.Int64)
			s.chunks[n>>chunkBits].Store(c)
		}
		s.mu.Unlock()
	}
	c[n&(chunkSize-1)].CompareAndSwap(0, at)
}

// get returns event n's instant, or 0.
func (s *stamps) get(n int64) int64 {
	if n < 0 || n>>chunkBits >= maxChunks {
		return 0
	}
	if c := s.chunks[n>>chunkBits].Load(); c != nil {
		return c[n&(chunkSize-1)].Load()
	}
	return 0
}

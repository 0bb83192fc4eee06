package kvstore

// HoldReads takes every lookup slot of s, as MaxReadsInFlight running
// lookups would, so that Gets queue for the next batch until release.
func HoldReads(s *Store) (release func()) {
	s.reads.mu.Lock()
	s.reads.inFlight += MaxReadsInFlight
	s.reads.mu.Unlock()
	return func() {
		for range MaxReadsInFlight {
			s.finishRead()
		}
	}
}

// WaitingReads is the number of distinct keys waiting for the next batch.
func WaitingReads(s *Store) int {
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	return len(s.reads.order)
}

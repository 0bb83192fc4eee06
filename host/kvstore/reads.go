package kvstore

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
)

// Reads are coalesced. Every Get costs the database a round trip, and under
// load most of a round trip's cost is its own overhead (waking a backend,
// parse, bind, execute, a syscall each way), not the index lookup. So while
// MaxReadsInFlight lookups are running, further Gets wait and the next free
// slot reads all of them with one statement; Gets of the same key in one
// such batch share one row (Vitess calls this query consolidation).
//
// This keeps Get linearizable: a Get waits only for a batch that starts
// after it was called, so it sees every write committed before the call, as
// a lone query would. When fewer than MaxReadsInFlight lookups are running
// a Get is one statement of its own, as before: coalescing costs nothing at
// low load.
const (
	// MaxReadsInFlight bounds the lookups one Store runs at a time; beyond
	// it, Gets join the next batch.
	MaxReadsInFlight = 2
	// maxBatch bounds the keys of one batch statement; more waiting keys
	// take the next one.
	maxBatch = 256
	// batchTimeout bounds a batch statement, which runs for several callers
	// and so under none of their contexts: a caller whose own context ends
	// stops waiting (CodeTimeout) and the batch completes for the others.
	batchTimeout = 10 * time.Second
)

// read is the outcome of one key's lookup, shared by every Get of that key
// in a batch. The value is shared too: callers must not modify it.
type read struct {
	ns      string
	key     []byte // a copy: the caller's key may be guest memory, reused once it stops waiting
	done    chan struct{}
	value   []byte
	version int64
	found   bool
	err     error
}

// reads coalesces Gets (see MaxReadsInFlight).
type reads struct {
	mu       sync.Mutex
	inFlight int
	pending  map[string]*read // by namespace and key, waiting for the next batch
	order    []*read          // pending in arrival order
}

func readKey(ns string, key []byte) string { return ns + "\x00" + string(key) }

// get returns key's value and version, by a statement of its own when a
// slot is free and from the next batch otherwise.
func (s *Store) get(ctx context.Context, ns string, key []byte) ([]byte, int64, error) {
	r := &s.reads
	r.mu.Lock()
	if r.inFlight < MaxReadsInFlight {
		r.inFlight++
		r.mu.Unlock()
		v, ver, err := s.getOne(ctx, ns, key)
		s.finishRead()
		return v, ver, err
	}
	k := readKey(ns, key)
	w := r.pending[k]
	if w == nil {
		if r.pending == nil {
			r.pending = map[string]*read{}
		}
		w = &read{ns: ns, key: []byte(k[len(ns)+1:]), done: make(chan struct{})}
		r.pending[k] = w
		r.order = append(r.order, w)
	}
	r.mu.Unlock()
	select {
	case <-w.done:
		return w.value, w.version, w.err
	case <-ctx.Done():
		return nil, 0, dbError(ctx, "get", ctx.Err())
	}
}

// finishRead frees a lookup's slot, or hands it to the waiting Gets: the
// slot stays taken and a goroutine reads them as one batch.
func (s *Store) finishRead() {
	r := &s.reads
	r.mu.Lock()
	if len(r.order) == 0 {
		r.inFlight--
		r.mu.Unlock()
		return
	}
	n := min(len(r.order), maxBatch)
	batch := make([]*read, n)
	copy(batch, r.order)
	r.order = r.order[n:]
	for _, w := range batch {
		delete(r.pending, readKey(w.ns, w.key))
	}
	if len(r.order) == 0 {
		r.order = nil // let the backing array go
	}
	r.mu.Unlock()
	go s.getBatch(batch)
}

// getBatch reads every key of batch with one statement, wakes their Gets,
// and frees its slot (or takes the next batch).
func (s *Store) getBatch(batch []*read) {
	defer s.finishRead()
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	if len(batch) == 1 {
		w := batch[0]
		w.value, w.version, w.err = s.getOne(ctx, w.ns, w.key)
		close(w.done)
		return
	}
	nss := make([]string, len(batch))
	keys := make([][]byte, len(batch))
	for i, w := range batch {
		nss[i], keys[i] = w.ns, w.key
	}
	rows, err := s.pool.Query(ctx, `
		SELECT q.i, e.value, e.version
		FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS q(namespace, key, i)
		JOIN kv_entries e ON e.namespace = q.namespace AND e.key = q.key`, nss, keys)
	if err == nil {
		var i int64
		var value []byte
		var version int64
		_, err = pgx.ForEachRow(rows, []any{&i, &value, &version}, func() error {
			if i >= 1 && i <= int64(len(batch)) {
				w := batch[i-1]
				w.value, w.version, w.found = value, version, true
			}
			value = nil // Scan into a fresh slice for the next row
			return nil
		})
	}
	for _, w := range batch {
		switch {
		case err != nil:
			w.err = dbError(ctx, "get", err)
		case !w.found:
			w.err = jifu.Errorf(jifu.CodeNotFound, "kvstore: key not found")
		}
		close(w.done)
	}
}

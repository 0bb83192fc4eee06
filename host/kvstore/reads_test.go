package kvstore_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/kvstore"
)

// countingTracer counts the statements a pool sends.
type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// tracedStore is a Store on a pool of its own that counts its statements.
func tracedStore(t *testing.T) (*kvstore.Store, *pgxpool.Pool, *countingTracer) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &countingTracer{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return kvstore.New(pool), pool, tr
}

type getResult struct {
	value   []byte
	version int64
	err     error
}

// queueGets starts a Get for each key while s's slots are held and waits
// until the distinct keys are queued; wait returns their results in order.
func queueGets(t *testing.T, ctx context.Context, s *kvstore.Store, ns string, keys []string, distinct int) (wait func() []getResult) {
	t.Helper()
	res := make([]getResult, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte(k)
			v, ver, err := s.Get(ctx, ns, key)
			copy(key, "XXXXXXXX") // the caller reuses its key buffer at once (guest memory does)
			res[i] = getResult{v, ver, err}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for kvstore.WaitingReads(s) < distinct {
		if time.Now().After(deadline) {
			t.Fatalf("%d keys waiting, want %d", kvstore.WaitingReads(s), distinct)
		}
		time.Sleep(time.Millisecond)
	}
	return func() []getResult { wg.Wait(); return res }
}

func TestGetCoalesced(t *testing.T) {
	ctx := context.Background()
	s, _, tr := tracedStore(t)
	ns := namespace(t)
	other := ns + ":other"
	for i := range 5 {
		for range i + 1 {
			if _, err := s.Put(ctx, ns, fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Put(ctx, ns, []byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, other, []byte("k0"), []byte("another app's")); err != nil {
		t.Fatal(err)
	}
	// 60 Gets of 7 distinct keys (one missing, one empty), two rounds of each.
	var keys []string
	for range 10 {
		keys = append(keys, "k0", "k1", "k2", "k3", "k4", "missing")
	}
	keys = append(keys, "empty")
	release := kvstore.HoldReads(s)
	wait := queueGets(t, ctx, s, ns, keys, 7)
	// A write committed after the Gets were called but before their batch
	// started is visible: the batch reads after every caller arrived.
	if _, err := s.Put(ctx, ns, []byte("k4"), []byte("v4 later")); err != nil {
		t.Fatal(err)
	}
	before := tr.n.Load()
	release()
	res := wait()
	if n := tr.n.Load() - before; n != 1 {
		t.Errorf("%d statements for one batch, want 1", n)
	}
	for i, k := range keys {
		r := res[i]
		switch k {
		case "missing":
			if jifu.ErrorCode(r.err) != jifu.CodeNotFound {
				t.Errorf("Get(missing) err = %v, want %s", r.err, jifu.CodeNotFound)
			}
		case "empty":
			if r.err != nil || r.value == nil || len(r.value) != 0 || r.version != 1 {
				t.Errorf("Get(empty) = %q (nil %v) v%d, %v; want empty v1", r.value, r.value == nil, r.version, r.err)
			}
		case "k4":
			if r.err != nil || string(r.value) != "v4 later" || r.version != 6 {
				t.Errorf("Get(k4) = %q v%d, %v; want \"v4 later\" v6", r.value, r.version, r.err)
			}
		default:
			n := int(k[1] - '0')
			if r.err != nil || string(r.value) != fmt.Sprintf("v%d", n) || r.version != int64(n+1) {
				t.Errorf("Get(%s) = %q v%d, %v; want v%d v%d", k, r.value, r.version, r.err, n, n+1)
			}
		}
	}
	// Once the batch is done the slots are free: a Get is one statement again.
	before = tr.n.Load()
	if v, _, err := s.Get(ctx, other, []byte("k0")); err != nil || string(v) != "another app's" {
		t.Fatalf("Get in the other namespace = %q, %v", v, err)
	}
	if n := tr.n.Load() - before; n != 1 {
		t.Errorf("%d statements for a lone Get, want 1", n)
	}
}

func TestGetCoalescedBatchesAreBounded(t *testing.T) {
	ctx := context.Background()
	s, _, tr := tracedStore(t)
	ns := namespace(t)
	const n = 600 // more distinct keys than one batch statement takes
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%04d", i)
	}
	for _, k := range keys[:n/2] {
		if _, err := s.Put(ctx, ns, []byte(k), []byte("val-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	release := kvstore.HoldReads(s)
	wait := queueGets(t, ctx, s, ns, keys, n)
	before := tr.n.Load()
	release()
	res := wait()
	if got := tr.n.Load() - before; got < 3 || got > 4 {
		t.Errorf("%d statements for %d keys, want 3 (batches of at most 256)", got, n)
	}
	for i, k := range keys {
		if i < n/2 {
			if res[i].err != nil || !bytes.Equal(res[i].value, []byte("val-"+k)) {
				t.Errorf("Get(%s) = %q, %v", k, res[i].value, res[i].err)
			}
		} else if jifu.ErrorCode(res[i].err) != jifu.CodeNotFound {
			t.Errorf("Get(%s) err = %v, want not found", k, res[i].err)
		}
	}
}

func TestGetWaitingCallerGivesUp(t *testing.T) {
	s, _, _ := tracedStore(t)
	ns := namespace(t)
	if _, err := s.Put(context.Background(), ns, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	release := kvstore.HoldReads(s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	wait := queueGets(t, context.Background(), s, ns, []string{"k"}, 1)
	// A second caller of the same key whose deadline passes stops waiting
	// with CodeTimeout; the first still gets its value once the batch runs.
	if _, _, err := s.Get(ctx, ns, []byte("k")); jifu.ErrorCode(err) != jifu.CodeTimeout {
		t.Fatalf("Get past its deadline: %v, want %s", err, jifu.CodeTimeout)
	}
	release()
	if r := wait()[0]; r.err != nil || string(r.value) != "v" {
		t.Fatalf("Get = %q, %v", r.value, r.err)
	}
}

func TestGetBatchFailureReachesEveryCaller(t *testing.T) {
	s, pool, _ := tracedStore(t)
	ns := namespace(t)
	release := kvstore.HoldReads(s)
	wait := queueGets(t, context.Background(), s, ns, []string{"a", "b", "a"}, 2)
	pool.Close() // the batch's statement cannot run
	release()
	for i, r := range wait() {
		if jifu.ErrorCode(r.err) != jifu.CodeUnavailable {
			t.Errorf("Get %d err = %v, want %s", i, r.err, jifu.CodeUnavailable)
		}
	}
}

// TestGetCoalescedConcurrent checks values under real contention: writers
// bump counters while readers Get them; every read returns a value the key
// really had, with its version, never one older than a read the same
// reader saw before (each reader's versions are monotonic per key).
func TestGetCoalescedConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _, _ := tracedStore(t)
	ns := namespace(t)
	const keys, writes, readers = 4, 40, 32
	for k := range keys {
		if _, err := s.Put(ctx, ns, fmt.Appendf(nil, "c%d", k), []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, readers+keys)
	for k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range writes {
				v, ver, err := s.Get(ctx, ns, fmt.Appendf(nil, "c%d", k))
				if err != nil {
					errs <- err
					return
				}
				if _, err := s.CompareAndSet(ctx, ns, fmt.Appendf(nil, "c%d", k), ver, fmt.Appendf(nil, "%d", ver+1)); err != nil && jifu.ErrorCode(err) != jifu.CodeConflict {
					errs <- err
					return
				}
				_ = v
			}
		}()
	}
	var rg sync.WaitGroup
	for range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			last := make([]int64, keys)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := i % keys
				v, ver, err := s.Get(ctx, ns, fmt.Appendf(nil, "c%d", k))
				if err != nil {
					errs <- err
					return
				}
				if string(v) != fmt.Sprint(ver) || ver < last[k] {
					errs <- fmt.Errorf("c%d read %q at version %d after version %d", k, v, ver, last[k])
					return
				}
				last[k] = ver
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

package kvstore_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/kvstore"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// namespace gives each test its own namespace in the shared database.
func namespace(t testing.TB) string { return "test:" + t.Name() }

func newStore(t testing.TB) *kvstore.Store { return kvstore.New(dbtest.Pool(t)) }

func TestPutGet(t *testing.T) {
	ctx := context.Background()
	kv := newStore(t)
	ns := namespace(t)
	big := bytes.Repeat([]byte{0xAB}, kvstore.MaxValueBytes)
	longKey := bytes.Repeat([]byte{'k'}, kvstore.MaxKeyBytes)
	tests := []struct {
		name        string
		key, value  []byte
		wantValue   []byte
		wantVersion int64
	}{
		{"new key starts at version 1", []byte("a"), []byte("one"), []byte("one"), 1},
		{"overwrite bumps the version", []byte("a"), []byte("two"), []byte("two"), 2},
		{"again", []byte("a"), []byte("three"), []byte("three"), 3},
		{"empty value", []byte("empty"), []byte{}, []byte{}, 1},
		{"nil value is stored empty", []byte("nil"), nil, []byte{}, 1},
		{"binary key", []byte{0x00, 0xFF, 0x10}, []byte{0x00}, []byte{0x00}, 1},
		{"largest value", []byte("big"), big, big, 1},
		{"longest key", longKey, []byte("x"), []byte("x"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := kv.Put(ctx, ns, tt.key, tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if v != tt.wantVersion {
				t.Errorf("Put version = %d, want %d", v, tt.wantVersion)
			}
			got, gv, err := kv.Get(ctx, ns, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.wantValue) || got == nil || gv != tt.wantVersion {
				t.Errorf("Get = %q (nil %v) v%d, want %q v%d", trunc(got), got == nil, gv, trunc(tt.wantValue), tt.wantVersion)
			}
		})
	}
}

func TestGetMissing(t *testing.T) {
	_, _, err := newStore(t).Get(context.Background(), namespace(t), []byte("nope"))
	if jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Fatalf("err = %v, want CodeNotFound", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	ctx := context.Background()
	kv := newStore(t)
	ns := namespace(t)
	tooLongKey := bytes.Repeat([]byte{'k'}, kvstore.MaxKeyBytes+1)
	tooBig := make([]byte, kvstore.MaxValueBytes+1)
	tests := []struct {
		name string
		call func() error
		code string
		key  []byte // must not exist afterwards
	}{
		{"put empty key", func() error { _, err := kv.Put(ctx, ns, nil, []byte("v")); return err }, jifu.CodeInvalid, nil},
		{"put key too long", func() error { _, err := kv.Put(ctx, ns, tooLongKey, []byte("v")); return err }, jifu.CodeTooLarge, nil},
		{"put value too big", func() error { _, err := kv.Put(ctx, ns, []byte("big"), tooBig); return err }, jifu.CodeTooLarge, []byte("big")},
		{"put empty namespace", func() error { _, err := kv.Put(ctx, "", []byte("k"), nil); return err }, jifu.CodeInvalid, nil},
		{"put namespace too long", func() error {
			_, err := kv.Put(ctx, strings.Repeat("n", kvstore.MaxNamespaceBytes+1), []byte("k"), nil)
			return err
		}, jifu.CodeInvalid, nil},
		{"get empty key", func() error { _, _, err := kv.Get(ctx, ns, []byte{}); return err }, jifu.CodeInvalid, nil},
		{"get key too long", func() error { _, _, err := kv.Get(ctx, ns, tooLongKey); return err }, jifu.CodeTooLarge, nil},
		{"delete empty key", func() error { _, err := kv.Delete(ctx, ns, nil); return err }, jifu.CodeInvalid, nil},
		{"delete key too long", func() error { _, err := kv.Delete(ctx, ns, tooLongKey); return err }, jifu.CodeTooLarge, nil},
		{"cas empty key", func() error { _, err := kv.CompareAndSet(ctx, ns, nil, 0, []byte("v")); return err }, jifu.CodeInvalid, nil},
		{"cas value too big", func() error { _, err := kv.CompareAndSet(ctx, ns, []byte("casbig"), 0, tooBig); return err }, jifu.CodeTooLarge, []byte("casbig")},
		{"cas negative version", func() error { _, err := kv.CompareAndSet(ctx, ns, []byte("neg"), -1, nil); return err }, jifu.CodeInvalid, []byte("neg")},
		{"scan limit 0", func() error { _, _, err := kv.Scan(ctx, ns, nil, nil, 0); return err }, jifu.CodeInvalid, nil},
		{"scan limit negative", func() error { _, _, err := kv.Scan(ctx, ns, nil, nil, -5); return err }, jifu.CodeInvalid, nil},
		{"scan limit too high", func() error { _, _, err := kv.Scan(ctx, ns, nil, nil, kvstore.MaxScanLimit+1); return err }, jifu.CodeInvalid, nil},
		{"scan prefix too long", func() error { _, _, err := kv.Scan(ctx, ns, tooLongKey, nil, 10); return err }, jifu.CodeTooLarge, nil},
		{"scan cursor too long", func() error { _, _, err := kv.Scan(ctx, ns, nil, tooLongKey, 10); return err }, jifu.CodeTooLarge, nil},
		{"scan empty namespace", func() error { _, _, err := kv.Scan(ctx, "", nil, nil, 10); return err }, jifu.CodeInvalid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); jifu.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
			if tt.key != nil {
				if _, _, err := kv.Get(ctx, ns, tt.key); jifu.ErrorCode(err) != jifu.CodeNotFound {
					t.Errorf("after a rejected write Get = %v, want CodeNotFound", err)
				}
			}
		})
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	kv := newStore(t)
	ns := namespace(t)
	key := []byte("doomed")
	if _, err := kv.Put(ctx, ns, key, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, ns, key, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		want bool
	}{
		{"existing key", true},
		{"already gone", false},
	}
	for _, s := range steps {
		deleted, err := kv.Delete(ctx, ns, key)
		if err != nil || deleted != s.want {
			t.Fatalf("%s: Delete = %v, %v; want %v", s.name, deleted, err, s.want)
		}
	}
	if _, _, err := kv.Get(ctx, ns, key); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Errorf("Get after Delete: %v, want CodeNotFound", err)
	}
	// Recreated, it starts over at version 1.
	if v, err := kv.Put(ctx, ns, key, []byte("again")); err != nil || v != 1 {
		t.Errorf("Put after Delete = %d, %v; want 1", v, err)
	}
}

func TestCompareAndSet(t *testing.T) {
	ctx := context.Background()
	kv := newStore(t)
	ns := namespace(t)
	key := []byte("counter")
	// Steps run in order on one key.
	steps := []struct {
		name        string
		expect      int64
		value       string
		wantVersion int64
		wantCode    string
		wantValue   string // after the step
	}{
		{"create when missing", 0, "a", 1, "", "a"},
		{"create when present conflicts", 0, "b", 0, jifu.CodeConflict, "a"},
		{"update at current version", 1, "c", 2, "", "c"},
		{"stale version conflicts", 1, "d", 0, jifu.CodeConflict, "c"},
		{"future version conflicts", 9, "e", 0, jifu.CodeConflict, "c"},
		{"update again", 2, "f", 3, "", "f"},
	}
	for _, s := range steps {
		v, err := kv.CompareAndSet(ctx, ns, key, s.expect, []byte(s.value))
		if jifu.ErrorCode(err) != s.wantCode || v != s.wantVersion {
			t.Fatalf("%s: CompareAndSet = %d, %v; want %d, code %q", s.name, v, err, s.wantVersion, s.wantCode)
		}
		got, _, err := kv.Get(ctx, ns, key)
		if err != nil || string(got) != s.wantValue {
			t.Fatalf("%s: value after = %q, %v; want %q", s.name, got, err, s.wantValue)
		}
	}
	if _, err := kv.CompareAndSet(ctx, ns, []byte("absent"), 1, []byte("x")); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Errorf("CAS on a missing key expecting version 1: %v, want CodeConflict", err)
	}
	if _, _, err := kv.Get(ctx, ns, []byte("absent")); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Errorf("failed CAS created the key: %v", err)
	}
}

func TestNamespaceIsolation(t *testing.T) {
	ctx := context.Background()
	kv := newStore(t)
	a, b := namespace(t)+"/a", namespace(t)+"/b"
	key := []byte("shared-name")
	if _, err := kv.Put(ctx, a, key, []byte("from a")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, a, []byte("only-a"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if v, err := kv.Put(ctx, b, key, []byte("from b")); err != nil || v != 1 {
		t.Fatalf("Put in b = %d, %v; want version 1 (independent of a)", v, err)
	}
	tests := []struct {
		ns, want string
	}{{a, "from a"}, {b, "from b"}}
	for _, tt := range tests {
		got, _, err := kv.Get(ctx, tt.ns, key)
		if err != nil || string(got) != tt.want {
			t.Errorf("Get(%s) = %q, %v; want %q", tt.ns, got, err, tt.want)
		}
	}
	if _, _, err := kv.Get(ctx, b, []byte("only-a")); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Errorf("b sees a's key: %v", err)
	}
	entries, _, err := kv.Scan(ctx, b, nil, nil, kvstore.MaxScanLimit)
	if err != nil || len(entries) != 1 || string(entries[0].Value) != "from b" {
		t.Errorf("Scan(b) = %+v, %v; want b's one entry", entries, err)
	}
	if _, err := kv.CompareAndSet(ctx, b, []byte("only-a"), 1, []byte("y")); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Errorf("CAS in b on a's key: %v, want CodeConflict", err)
	}
	if deleted, err := kv.Delete(ctx, b, []byte("only-a")); err != nil || deleted {
		t.Errorf("Delete in b of a's key = %v, %v", deleted, err)
	}
	if _, _, err := kv.Get(ctx, a, []byte("only-a")); err != nil {
		t.Errorf("a's key gone after b's Delete: %v", err)
	}
}

// TestConcurrentCAS has N goroutines race, round after round, to move the
// same key from the round's version to the next: exactly one wins a round.
func TestConcurrentCAS(t *testing.T) {
	ctx := context.Background()
	kv := newStore(t)
	ns := namespace(t)
	const workers, rounds = 8, 15
	key := []byte("contended")
	for round := int64(0); round < rounds; round++ {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			winners  []int
			failures []error
		)
		start := make(chan struct{})
		for w := range workers {
			wg.Go(func() {
				<-start
				v, err := kv.CompareAndSet(ctx, ns, key, round, fmt.Appendf(nil, "round %d by %d", round, w))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && v == round+1:
					winners = append(winners, w)
				case jifu.ErrorCode(err) == jifu.CodeConflict:
				default:
					failures = append(failures, fmt.Errorf("worker %d: %d, %v", w, v, err))
				}
			})
		}
		close(start)
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("round %d: %v", round, failures)
		}
		if len(winners) != 1 {
			t.Fatalf("round %d (expect version %d): %d winners %v, want exactly 1", round, round, len(winners), winners)
		}
		got, v, err := kv.Get(ctx, ns, key)
		if want := fmt.Sprintf("round %d by %d", round, winners[0]); err != nil || v != round+1 || string(got) != want {
			t.Fatalf("round %d: Get = %q v%d, %v; want %q v%d", round, got, v, err, want, round+1)
		}
	}
}

func TestScan(t *testing.T) {
	ctx := context.Background()
	kv := newStore(t)
	ns := namespace(t)
	keys := [][]byte{
		{0x00}, {0x01}, []byte("a"), []byte("a\x00"), []byte("a\xff"), []byte("a\xff\xff"), []byte("a\xff\xff\x01"),
		[]byte("ab"), []byte("b"), {0xFE, 0xFF}, {0xFF}, {0xFF, 0x00}, {0xFF, 0xFF}, {0xFF, 0xFF, 0xFF},
	}
	for _, k := range keys {
		if _, err := kv.Put(ctx, ns, k, append([]byte("v:"), k...)); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	withPrefix := func(p []byte) [][]byte {
		var out [][]byte
		for _, k := range keys {
			if bytes.HasPrefix(k, p) {
				out = append(out, k)
			}
		}
		return out
	}
	tests := []struct {
		name          string
		prefix, after []byte
		limit         int
		want          [][]byte
		wantMore      bool
	}{
		{"everything", nil, nil, 100, keys, false},
		{"prefix a", []byte("a"), nil, 100, withPrefix([]byte("a")), false},
		{"prefix a-ff", []byte("a\xff"), nil, 100, withPrefix([]byte("a\xff")), false},
		{"prefix ff", []byte{0xFF}, nil, 100, withPrefix([]byte{0xFF}), false},
		{"prefix ff-ff", []byte{0xFF, 0xFF}, nil, 100, withPrefix([]byte{0xFF, 0xFF}), false},
		{"prefix fe", []byte{0xFE}, nil, 100, [][]byte{{0xFE, 0xFF}}, false},
		{"prefix matching nothing", []byte("zz"), nil, 100, nil, false},
		{"limit cuts and says more", []byte("a"), nil, 2, [][]byte{[]byte("a"), []byte("a\x00")}, true},
		{"limit exactly the count", []byte("a"), nil, 6, withPrefix([]byte("a")), false},
		{"after within prefix", []byte("a"), []byte("ab"), 100, [][]byte{[]byte("a\xff"), []byte("a\xff\xff"), []byte("a\xff\xff\x01")}, false},
		{"after before prefix", []byte("b"), []byte("a"), 100, [][]byte{[]byte("b")}, false},
		{"after past prefix", []byte("a"), []byte("b"), 100, nil, false},
		{"after last key", nil, []byte{0xFF, 0xFF, 0xFF}, 100, nil, false},
		{"empty after means from the start", nil, []byte{}, 100, keys, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, more, err := kv.Scan(ctx, ns, tt.prefix, tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for _, e := range entries {
				got = append(got, e.Key)
				if want := append([]byte("v:"), e.Key...); !bytes.Equal(e.Value, want) || e.Version != 1 {
					t.Errorf("entry %x = %q v%d, want %q v1", e.Key, e.Value, e.Version, want)
				}
			}
			if !slices.EqualFunc(got, tt.want, bytes.Equal) || more != tt.wantMore {
				t.Errorf("Scan = %x more=%v, want %x more=%v", got, more, tt.want, tt.wantMore)
			}
		})
	}
}

// TestScanPaging pages through many keys with every page size pattern and
// gets each key once, in order.
func TestScanPaging(t *testing.T) {
	ctx := context.Background()
	kv := newStore(t)
	ns := namespace(t)
	var want [][]byte
	for i := range 2500 {
		k := fmt.Appendf(nil, "item/%05d", i)
		if i%10 == 0 {
			k = append(k, 0xFF) // keys with a 0xFF tail sort after their stem
		}
		want = append(want, k)
	}
	// Neighbours outside the prefix must never show up.
	for _, k := range []string{"item.", "item0", "iteL/x", "items/1"} {
		if _, err := kv.Put(ctx, ns, []byte(k), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range want {
		if _, err := kv.Put(ctx, ns, k, k); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(want, bytes.Compare)
	for _, limit := range []int{1000, 333, 7} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got [][]byte
			var after []byte
			pages := 0
			for {
				entries, more, err := kv.Scan(ctx, ns, []byte("item/"), after, limit)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if len(entries) > limit {
					t.Fatalf("page of %d entries, limit %d", len(entries), limit)
				}
				for _, e := range entries {
					got = append(got, e.Key)
				}
				if !more {
					break
				}
				after = entries[len(entries)-1].Key
			}
			if !slices.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("paged %d keys, want %d (first mismatch near %d)", len(got), len(want), firstDiff(got, want))
			}
			if wantPages := (len(want) + limit - 1) / limit; pages < wantPages || pages > wantPages+1 {
				t.Errorf("%d pages, want about %d", pages, wantPages)
			}
		})
	}
}

func firstDiff(a, b [][]byte) int {
	for i := range min(len(a), len(b)) {
		if !bytes.Equal(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

func trunc(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	kv := newStore(b)
	ns := namespace(b)
	key := []byte("bench-key")
	if _, err := kv.Put(ctx, ns, key, bytes.Repeat([]byte("v"), 256)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := kv.Get(ctx, ns, key); err != nil {
			b.Fatal(err)
		}
	}
}

package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/audit"
	"github.com/jifu-open/jifu/host/database/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// logBuffer collects a Writer's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newWriter(t testing.TB) (*audit.Writer, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	w := audit.New(dbtest.Pool(t), slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() {
		if err := w.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w, logs
}

func appName(t testing.TB) string { return "app:" + t.Name() }

func record(app, inv string, i int) audit.Record {
	return audit.Record{
		At:           time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		InvocationID: inv,
		App:          app,
		Version:      "1.2.3",
		User:         "u_42",
		Capability:   "kv",
		Function:     "get",
		Code:         "",
		Duration:     time.Duration(1500+i) * time.Microsecond,
	}
}

func count(t testing.TB, app string) int {
	t.Helper()
	var n int
	if err := dbtest.Pool(t).QueryRow(context.Background(), `SELECT count(*) FROM audit_records WHERE app = $1`, app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRecordsArriveWithoutFlush(t *testing.T) {
	ctx := context.Background()
	w, _ := newWriter(t)
	app := appName(t)
	want := record(app, "inv-1", 0)
	want.Code = jifu.CodeNotFound
	w.Record(want)
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs, err := audit.Query(ctx, dbtest.Pool(t), audit.Filter{App: app})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 {
			got := recs[0]
			if !got.At.Equal(want.At) {
				t.Errorf("At = %v, want %v", got.At, want.At)
			}
			got.At = want.At
			if got != want {
				t.Errorf("stored %+v, want %+v", got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("record not written within 5 s (interval %v); found %d", audit.FlushInterval, len(recs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRecordSetsTime(t *testing.T) {
	ctx := context.Background()
	w, _ := newWriter(t)
	app := appName(t)
	before := time.Now().Add(-time.Second)
	w.Record(audit.Record{App: app, InvocationID: "inv"})
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := audit.Query(ctx, dbtest.Pool(t), audit.Filter{App: app})
	if err != nil || len(recs) != 1 {
		t.Fatalf("Query = %v, %v", recs, err)
	}
	if recs[0].At.Before(before) || recs[0].At.After(time.Now().Add(time.Second)) {
		t.Errorf("At = %v, want about now", recs[0].At)
	}
}

func TestCloseFlushes(t *testing.T) {
	ctx := context.Background()
	logs := &logBuffer{}
	w := audit.New(dbtest.Pool(t), slog.New(slog.NewTextHandler(logs, nil)))
	app := appName(t)
	const n = audit.BatchSize*2 + 17
	for i := range n {
		w.Record(record(app, "inv", i))
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t, app); got != n {
		t.Errorf("%d records stored after Close, want %d", got, n)
	}
	if err := w.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
	// Too late: not stored, but not silently lost either.
	w.Record(record(app, "late", 0))
	if !strings.Contains(logs.String(), "record after Close") || !strings.Contains(logs.String(), "late") {
		t.Errorf("a record after Close was not logged; logs:\n%s", logs.String())
	}
}

func TestConcurrentRecords(t *testing.T) {
	ctx := context.Background()
	w, _ := newWriter(t)
	app := appName(t)
	const workers, each = 8, 1500 // 12000 records: more than BufferSize, so Record blocks at times
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				w.Record(record(app, fmt.Sprintf("inv-%d", g), i))
			}
		})
	}
	// Flushes racing with the writers.
	for range 3 {
		if err := w.Flush(ctx); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t, app); got != workers*each {
		t.Errorf("%d records stored, want %d", got, workers*each)
	}
	recs, err := audit.Query(ctx, dbtest.Pool(t), audit.Filter{App: app, InvocationID: "inv-3", Limit: audit.MaxQueryLimit})
	if err != nil || len(recs) != audit.MaxQueryLimit {
		t.Errorf("Query inv-3 = %d records, %v; want %d", len(recs), err, audit.MaxQueryLimit)
	}
}

func TestQuery(t *testing.T) {
	ctx := context.Background()
	w, _ := newWriter(t)
	app, other := appName(t), appName(t)+"/other"
	for i := range 5 {
		w.Record(record(app, "inv-a", i))
	}
	for i := 5; i < 8; i++ {
		w.Record(record(app, "inv-b", i))
	}
	w.Record(record(other, "inv-a", 100))
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		filter   audit.Filter
		wantLen  int
		wantCode string
		check    func(t *testing.T, recs []audit.Record)
	}{
		{name: "by app, newest first", filter: audit.Filter{App: app}, wantLen: 8, check: func(t *testing.T, recs []audit.Record) {
			for i := 1; i < len(recs); i++ {
				if recs[i].At.After(recs[i-1].At) {
					t.Errorf("record %d is newer than record %d", i, i-1)
				}
			}
		}},
		{name: "by app and invocation", filter: audit.Filter{App: app, InvocationID: "inv-b"}, wantLen: 3},
		{name: "by invocation across apps", filter: audit.Filter{InvocationID: "inv-a"}, wantLen: 6, check: func(t *testing.T, recs []audit.Record) {
			if recs[0].App != other {
				t.Errorf("newest inv-a record is from %q, want %q", recs[0].App, other)
			}
		}},
		{name: "limit", filter: audit.Filter{App: app, Limit: 2}, wantLen: 2, check: func(t *testing.T, recs []audit.Record) {
			if recs[0].Duration != 1507*time.Microsecond {
				t.Errorf("newest record's duration = %v, want 1.507ms", recs[0].Duration)
			}
		}},
		{name: "unknown app", filter: audit.Filter{App: "nobody"}, wantLen: 0},
		{name: "negative limit", filter: audit.Filter{App: app, Limit: -1}, wantCode: jifu.CodeInvalid},
		{name: "limit too high", filter: audit.Filter{App: app, Limit: audit.MaxQueryLimit + 1}, wantCode: jifu.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := audit.Query(ctx, dbtest.Pool(t), tt.filter)
			if jifu.ErrorCode(err) != tt.wantCode {
				t.Fatalf("Query = %v, want code %q", err, tt.wantCode)
			}
			if len(recs) != tt.wantLen {
				t.Fatalf("Query returned %d records, want %d", len(recs), tt.wantLen)
			}
			if tt.check != nil {
				tt.check(t, recs)
			}
		})
	}
}

// takeTableAway makes writes fail until the returned func restores the
// table. The package's tests run one at a time, so no other test notices.
func takeTableAway(t *testing.T) (restore func()) {
	t.Helper()
	pool := dbtest.Pool(t)
	if _, err := pool.Exec(context.Background(), `ALTER TABLE audit_records RENAME TO audit_records_away`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if _, err := pool.Exec(context.Background(), `ALTER TABLE audit_records_away RENAME TO audit_records`); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}

func TestFailedWritesAreRetried(t *testing.T) {
	ctx := context.Background()
	w, logs := newWriter(t)
	app := appName(t)
	restore := takeTableAway(t)
	for i := range 10 {
		w.Record(record(app, "inv", i))
	}
	if err := w.Flush(ctx); jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Fatalf("Flush while the table is away = %v, want CodeUnavailable", err)
	}
	restore()
	deadline := time.Now().Add(15 * time.Second)
	for count(t, app) != 10 {
		if time.Now().After(deadline) {
			t.Fatalf("records not written after the table came back; logs:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"will retry", "works again"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

func TestCloseDeadlineLogsUnwritten(t *testing.T) {
	logs := &logBuffer{}
	w := audit.New(dbtest.Pool(t), slog.New(slog.NewTextHandler(logs, nil)))
	app := appName(t)
	takeTableAway(t)
	for i := range 3 {
		w.Record(record(app, fmt.Sprintf("unwritten-%d", i), i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := w.Close(ctx)
	if jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Fatalf("Close = %v, want CodeUnavailable", err)
	}
	for i := range 3 {
		if !strings.Contains(logs.String(), fmt.Sprintf("unwritten-%d", i)) {
			t.Errorf("record unwritten-%d not logged; logs:\n%s", i, logs.String())
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	w := audit.New(dbtest.Pool(b), slog.New(slog.DiscardHandler))
	r := record(appName(b), "bench", 0)
	b.ReportAllocs()
	for b.Loop() {
		w.Record(r)
	}
	// Writing what was queued is part of the cost.
	if err := w.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

package callback_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/outbox"
)

// Environment of the child process of TestKilledMidDelivery.
const (
	envChild  = "JIFU_CALLBACK_TEST_CHILD"
	envDB     = "JIFU_CALLBACK_TEST_DB"
	envTarget = "JIFU_CALLBACK_TEST_TARGET"
	envQueue  = "JIFU_CALLBACK_TEST_QUEUE"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(child())
	}
	dbtest.Main(m)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const e2eSecret = "whsec_e2e"

// fixedTargets sends every app's callbacks to one URL.
type fixedTargets struct{ url string }

func (f fixedTargets) Target(context.Context, string) (callback.Target, error) {
	return callback.Target{URL: f.url, Secret: []byte(e2eSecret)}, nil
}

// receiver is a developer's server: it verifies each callback and applies
// its effect once per event id, and misbehaves as told.
type receiver struct {
	t        *testing.T
	mu       sync.Mutex
	effects  map[string]int // event id -> effects applied (must end at 1)
	requests int
	bad      int // requests that failed verification
	behave   func(id string, n int) string
	seen     map[string]int
	hung     chan string // the ids of requests that hang
}

func newReceiver(t *testing.T, behave func(id string, n int) string) *receiver {
	return &receiver{t: t, effects: map[string]int{}, seen: map[string]int{}, behave: behave, hung: make(chan string, 1000)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(callback.HeaderEventID)
	var b callback.Body
	if err := callback.Verify([]byte(e2eSecret), r.Header.Get(callback.HeaderSignature), body, time.Now(), 0); err != nil ||
		json.Unmarshal(body, &b) != nil || b.ID != id {
		rc.mu.Lock()
		rc.bad++
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rc.mu.Lock()
	rc.requests++
	rc.seen[id]++
	mode := rc.behave(id, rc.seen[id])
	apply := func() { // deduplicated by event id
		if rc.effects[id] == 0 {
			rc.effects[id] = 1
		}
	}
	switch mode {
	case "fail":
		rc.mu.Unlock()
		http.Error(w, "try later", http.StatusServiceUnavailable)
	case "apply-then-fail":
		apply()
		rc.mu.Unlock()
		http.Error(w, "oops", http.StatusInternalServerError)
	case "apply-then-hang":
		apply()
		rc.mu.Unlock()
		rc.hung <- id
		<-r.Context().Done() // until the platform gives up (or dies)
	default:
		apply()
		rc.mu.Unlock()
		io.WriteString(w, "ok")
	}
}

func (rc *receiver) snapshot() (effects map[string]int, requests, bad int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	effects = make(map[string]int, len(rc.effects))
	for k, v := range rc.effects {
		effects[k] = v
	}
	return effects, rc.requests, rc.bad
}

func enqueueAll(t *testing.T, pool *pgxpool.Pool, ob *outbox.Outbox, evs []outbox.Event) {
	t.Helper()
	ctx := context.Background()
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, ev := range evs {
			if _, err := ob.Enqueue(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFlakyReceiver sends events through the real outbox and River to a
// receiver that fails half of the requests, sometimes after applying the
// effect, and sometimes hangs past the client's timeout: every event
// arrives, each with exactly one effect, and every delivery ends delivered.
func TestFlakyReceiver(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	var rmu sync.Mutex
	rng := rand.New(rand.NewPCG(5, 9))
	rc := newReceiver(t, func(id string, n int) string {
		rmu.Lock()
		defer rmu.Unlock()
		switch x := rng.IntN(100); {
		case x < 30:
			return "fail"
		case x < 40:
			return "apply-then-fail"
		case x < 50:
			return "apply-then-hang"
		}
		return "ok"
	})
	srv := httptest.NewServer(rc)
	defer srv.Close()

	ob, err := outbox.New(outbox.Config{
		Pool: pool, Queue: "flaky", Logger: quiet, Workers: 8, FetchPollInterval: 100 * time.Millisecond,
		Sinks:    map[string]outbox.Sink{callback.SinkWebhook: &callback.Webhook{Targets: fixedTargets{srv.URL}, Client: callback.NewHTTPClient(400 * time.Millisecond)}},
		Schedule: []time.Duration{20 * time.Millisecond}, MaxAttempts: 25, // 0.5^25: never dead in practice
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ob.Stop(context.Background())

	const n = 40
	var evs []outbox.Event
	for i := range n {
		evs = append(evs, outbox.Event{ID: fmt.Sprintf("flaky-%02d", i), App: "acme", Type: "order.created",
			Payload: json.RawMessage(fmt.Sprintf(`{"order":%d}`, i))})
	}
	enqueueAll(t, pool, ob, evs[:n/2])
	enqueueAll(t, pool, ob, evs[n/2:])

	waitFor(t, 60*time.Second, "every delivery to be acknowledged", func() bool {
		ds, err := ob.List(ctx, outbox.ListFilter{App: "acme", State: outbox.StateDelivered, Limit: 500})
		return err == nil && len(ds) == n
	})
	effects, requests, bad := rc.snapshot()
	if bad != 0 {
		t.Errorf("%d requests failed verification", bad)
	}
	if len(effects) != n {
		t.Errorf("%d events had an effect, want %d", len(effects), n)
	}
	for _, ev := range evs {
		if effects[ev.ID] != 1 {
			t.Errorf("event %s: %d effects", ev.ID, effects[ev.ID])
		}
	}
	if requests <= n {
		t.Errorf("only %d requests for %d events: the receiver never failed?", requests, n)
	}
	ds, err := ob.List(ctx, outbox.ListFilter{App: "acme", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	attempts := 0
	for _, d := range ds {
		attempts += d.Attempts
		if d.State != outbox.StateDelivered || d.LastError != "" || d.LastStatus != 200 {
			t.Errorf("delivery %+v", d)
		}
	}
	// An attempt that timed out before the receiver read it is recorded
	// but never seen: at least as many attempts as requests.
	if attempts < requests {
		t.Errorf("recorded %d attempts, receiver saw %d requests", attempts, requests)
	}
	t.Logf("%d events, %d requests", n, requests)
}

// TestKilledMidDelivery runs the delivery worker in a child process, kills
// it (SIGKILL) while the receiver holds its request, and checks that the
// event still arrives: River's rescuer (here in this process, set to rescue
// after a second) puts the job back on the schedule; when the kill hit the
// last attempt, the delivery shows as dead and a replay delivers it.
func TestKilledMidDelivery(t *testing.T) {
	tests := []struct {
		name        string
		maxAttempts int
	}{
		{"attempts left: retried", 0},
		{"last attempt: dead, then replayed", 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			killMidDelivery(t, fmt.Sprintf("killed%d", i), fmt.Sprintf("killed-%d", i), tt.maxAttempts)
		})
	}
}

func killMidDelivery(t *testing.T, queue, eventID string, maxAttempts int) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	rc := newReceiver(t, func(id string, n int) string {
		if n == 1 {
			return "apply-then-hang"
		}
		return "ok"
	})
	srv := httptest.NewServer(rc)
	defer srv.Close()
	sinks := map[string]outbox.Sink{callback.SinkWebhook: &callback.Webhook{Targets: fixedTargets{srv.URL}, Client: callback.NewHTTPClient(time.Second)}}

	writer, err := outbox.New(outbox.Config{Pool: pool, Queue: queue, Logger: quiet, Sinks: sinks, MaxAttempts: maxAttempts})
	if err != nil {
		t.Fatal(err)
	}
	enqueueAll(t, pool, writer, []outbox.Event{{ID: eventID, App: "acme", Type: "payment.succeeded"}})

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envDB+"="+dbtest.URL(t), envTarget+"="+srv.URL, envQueue+"="+queue)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	go io.Copy(io.Discard, bufio.NewReader(out))

	select {
	case <-rc.hung:
	case <-time.After(30 * time.Second):
		t.Fatal("the child never delivered")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true

	var (
		state       string
		attemptedAt time.Time
	)
	if err := pool.QueryRow(ctx, `SELECT state, attempted_at FROM river_job WHERE args->>'event_id' = $1`, eventID).Scan(&state, &attemptedAt); err != nil {
		t.Fatal(err)
	}
	if state != "running" {
		t.Fatalf("after the kill the job is %s, want running (stuck)", state)
	}
	// The rescuer runs when its client becomes leader: start it once the
	// job is past RescueAfter, so the first pass finds it.
	time.Sleep(time.Until(attemptedAt.Add(1500 * time.Millisecond)))
	rescuer, err := outbox.New(outbox.Config{
		Pool: pool, Queue: queue, Logger: quiet, Sinks: sinks, FetchPollInterval: 100 * time.Millisecond,
		JobTimeout: time.Second, RescueAfter: time.Second, Schedule: []time.Duration{10 * time.Millisecond},
		MaxAttempts: maxAttempts,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rescuer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rescuer.Stop(context.Background())
	find := func() outbox.Delivery {
		ds, err := rescuer.List(ctx, outbox.ListFilter{App: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ds {
			if x.EventID == eventID {
				return x
			}
		}
		t.Fatalf("no delivery of %s", eventID)
		return outbox.Delivery{}
	}
	if maxAttempts == 1 {
		waitFor(t, 30*time.Second, "the lost last attempt to show as dead", func() bool { return find().State == outbox.StateDead })
		if d := find(); d.LastError != outbox.LostMessage || d.Attempts != 0 {
			t.Errorf("dead delivery %+v", d)
		}
		if err := rescuer.Replay(ctx, "acme", eventID, callback.SinkWebhook); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the rescued delivery", func() bool { return find().State == outbox.StateDelivered })
	effects, requests, _ := rc.snapshot()
	if effects[eventID] != 1 || requests != 2 {
		t.Errorf("effects %v after %d requests, want one effect after 2", effects, requests)
	}
	// The killed attempt left no record; the rescued one did.
	if d := find(); d.Attempts != 1 || d.LastStatus != 200 || d.LastError != "" {
		t.Errorf("delivery %+v", d)
	}
}

// child is the process TestKilledMidDelivery kills: an outbox worker on the
// test's database and queue, outside leader election (so that it holds no
// lease the rescuer would wait out).
func child() int {
	ctx := context.Background()
	pool, err := database.Open(ctx, os.Getenv(envDB))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	ob, err := outbox.New(outbox.Config{
		Pool: pool, Queue: os.Getenv(envQueue), Logger: quiet, LeaderElectionDisabled: true,
		FetchPollInterval: 100 * time.Millisecond, JobTimeout: time.Minute,
		Sinks: map[string]outbox.Sink{callback.SinkWebhook: &callback.Webhook{
			Targets: fixedTargets{os.Getenv(envTarget)}, Client: callback.NewHTTPClient(time.Minute)}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if err := ob.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Println("ready")
	select {} // until killed
}

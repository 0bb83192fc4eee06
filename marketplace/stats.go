package marketplace

import (
	"context"
	"math/bits"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
)

// latencyBuckets is the number of log2 microsecond buckets of the latency
// histogram: bucket i counts invocations of [2^i, 2^(i+1)) µs (bucket 0
// also below 1 µs; the last also above).
const latencyBuckets = 26

// FlushInterval is how often recorded statistics reach the database.
const FlushInterval = 5 * time.Second

type statKey struct {
	app, version int64
	stage        string
	minute       int64 // unix minutes
}

type statAgg struct {
	calls, errs, sumUS int64
	buckets            [latencyBuckets]int64
}

type activeKey struct {
	app, version int64
	day          int64 // unix days
	user         string
}

// recorder aggregates invocations in memory and writes them every
// FlushInterval, so recording costs a map update on the request path.
type recorder struct {
	s      *Service
	mu     sync.Mutex
	stats  map[statKey]*statAgg
	active map[activeKey]struct{}
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func newRecorder(s *Service) *recorder {
	r := &recorder{s: s, stats: map[statKey]*statAgg{}, active: map[activeKey]struct{}{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *recorder) loop() {
	defer close(r.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.flush(ctx); err != nil {
			r.s.log.Warn("marketplace: writing statistics failed; kept for the next try", "err", err)
		}
		cancel()
	}
}

func (r *recorder) close(ctx context.Context) error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return r.flush(ctx)
}

// RecordInvocation counts one invocation of an app version in a release
// stage (StageGray or StageFull) for a user, with its latency and whether
// it failed. Serving calls it after every request.
func (s *Service) RecordInvocation(appID, versionID int64, stage, user string, d time.Duration, failed bool) {
	now := s.now()
	k := statKey{app: appID, version: versionID, stage: stage, minute: now.Unix() / 60}
	us := d.Microseconds()
	b := 0
	if us > 0 {
		b = min(bits.Len64(uint64(us))-1, latencyBuckets-1)
	}
	r := s.stats
	r.mu.Lock()
	a := r.stats[k]
	if a == nil {
		a = &statAgg{}
		r.stats[k] = a
	}
	a.calls++
	if failed {
		a.errs++
	}
	a.sumUS += us
	a.buckets[b]++
	if user != "" {
		r.active[activeKey{app: appID, version: versionID, day: now.Unix() / 86400, user: user}] = struct{}{}
	}
	big := len(r.stats)+len(r.active) > 20000
	r.mu.Unlock()
	if big {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// FlushStats writes the statistics recorded so far.
func (s *Service) FlushStats(ctx context.Context) error { return s.stats.flush(ctx) }

func (r *recorder) flush(ctx context.Context) error {
	r.mu.Lock()
	stats, active := r.stats, r.active
	r.stats, r.active = map[statKey]*statAgg{}, map[activeKey]struct{}{}
	r.mu.Unlock()
	if len(stats)+len(active) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for k, a := range stats {
		b.Queue(`INSERT INTO mp_stats (app_id, version_id, stage, minute, invocations, errors, latency_sum_us, buckets)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (app_id, version_id, stage, minute) DO UPDATE SET
				invocations = mp_stats.invocations + EXCLUDED.invocations,
				errors = mp_stats.errors + EXCLUDED.errors,
				latency_sum_us = mp_stats.latency_sum_us + EXCLUDED.latency_sum_us,
				buckets = (SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i)
					FROM unnest(mp_stats.buckets, EXCLUDED.buckets) WITH ORDINALITY AS t(x, y, i))`,
			k.app, k.version, k.stage, time.Unix(k.minute*60, 0).UTC(), a.calls, a.errs, a.sumUS, a.buckets[:])
	}
	for k := range active {
		b.Queue(`INSERT INTO mp_active_users (app_id, version_id, day, user_ref) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			k.app, k.version, time.Unix(k.day*86400, 0).UTC(), k.user)
	}
	err := pgx.BeginFunc(ctx, r.s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		// Put the figures back so the next flush writes them.
		r.mu.Lock()
		for k, a := range stats {
			if cur := r.stats[k]; cur != nil {
				cur.calls += a.calls
				cur.errs += a.errs
				cur.sumUS += a.sumUS
				for i := range cur.buckets {
					cur.buckets[i] += a.buckets[i]
				}
			} else {
				r.stats[k] = a
			}
		}
		for k := range active {
			r.active[k] = struct{}{}
		}
		r.mu.Unlock()
		return r.s.dbErr(ctx, "write statistics", err)
	}
	return nil
}

// Payment is a payment an app took, for its statistics.
type Payment struct {
	App       string // slug
	Version   string // the app version (manifest version) that created it; "" if unknown
	User      string // UserRef
	AmountFen int64
	ID        string // the payment's id: recording it twice counts once
}

// RecordPayment adds a successful payment to the app's payment volume. It
// is idempotent on (app, ID). The payment capability calls it.
func (s *Service) RecordPayment(ctx context.Context, p Payment) error {
	if p.AmountFen <= 0 || p.ID == "" || len(p.ID) > 128 {
		return invalid("a payment needs a positive amount and an id of 1..128 bytes")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO mp_payments (app_id, version_id, idem_key, user_ref, amount_fen)
		SELECT a.id, coalesce((SELECT v.id FROM mp_versions v WHERE v.app_id = a.id AND v.version = $2), 0), $3, $4, $5
		FROM mp_apps a WHERE a.slug = $1
		ON CONFLICT (app_id, idem_key) DO NOTHING`, p.App, p.Version, p.ID, p.User, p.AmountFen)
	if err != nil {
		return s.dbErr(ctx, "record payment", err)
	}
	return nil
}

// StageStats are an app version's figures in one release stage.
type StageStats struct {
	VersionID   int64
	Version     string
	Stage       string
	Invocations int64
	Errors      int64
	P50, P99    time.Duration // upper bounds of the log2 histogram buckets
	Mean        time.Duration
}

// ErrorRate is Errors / Invocations (0 without invocations).
func (st StageStats) ErrorRate() float64 {
	if st.Invocations == 0 {
		return 0
	}
	return float64(st.Errors) / float64(st.Invocations)
}

// DayStats are an app's figures of one day (UTC).
type DayStats struct {
	Day         time.Time
	Invocations int64
	Errors      int64
	ActiveUsers int64
	Installs    int64
	PaymentFen  int64
}

// AppStats are an app's statistics (统计BI) since a time.
type AppStats struct {
	AppID           int64
	Since           time.Time
	Installs        int64 // all time
	ActiveUsers     int64 // distinct users since Since
	PaymentFen      int64
	Payments        int64
	Stages          []StageStats // per version and stage
	Days            []DayStats   // oldest first
	ActiveByVersion map[int64]int64
}

// Stats returns an app's statistics since a time, with App's visibility.
func (s *Service) Stats(ctx context.Context, by Actor, appID int64, since time.Time) (*AppStats, error) {
	if _, err := s.App(ctx, by, appID); err != nil {
		return nil, err
	}
	if err := s.stats.flush(ctx); err != nil {
		return nil, err
	}
	st := &AppStats{AppID: appID, Since: since, ActiveByVersion: map[int64]int64{}}
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM mp_installs WHERE app_id = $1),
		(SELECT count(DISTINCT user_ref) FROM mp_active_users WHERE app_id = $1 AND day >= $2::date),
		(SELECT coalesce(sum(amount_fen), 0) FROM mp_payments WHERE app_id = $1 AND at >= $2),
		(SELECT count(*) FROM mp_payments WHERE app_id = $1 AND at >= $2)`, appID, since).
		Scan(&st.Installs, &st.ActiveUsers, &st.PaymentFen, &st.Payments)
	if err != nil {
		return nil, s.dbErr(ctx, "stats", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT s.version_id, coalesce(v.version, ''), s.stage, sum(s.invocations), sum(s.errors), sum(s.latency_sum_us),
		(SELECT array_agg(t.total ORDER BY t.i) FROM (
			SELECT i, sum(x) AS total FROM mp_stats s2, unnest(s2.buckets) WITH ORDINALITY AS u(x, i)
			WHERE s2.app_id = s.app_id AND s2.version_id = s.version_id AND s2.stage = s.stage AND s2.minute >= $2 GROUP BY i) t)
		FROM mp_stats s LEFT JOIN mp_versions v ON v.id = s.version_id
		WHERE s.app_id = $1 AND s.minute >= $2 GROUP BY s.app_id, s.version_id, v.version, s.stage ORDER BY s.version_id, s.stage`, appID, since)
	if err != nil {
		return nil, s.dbErr(ctx, "stats", err)
	}
	st.Stages, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (StageStats, error) {
		var (
			x       StageStats
			sumUS   int64
			buckets []int64
		)
		err := r.Scan(&x.VersionID, &x.Version, &x.Stage, &x.Invocations, &x.Errors, &sumUS, &buckets)
		if x.Invocations > 0 {
			x.Mean = time.Duration(sumUS/x.Invocations) * time.Microsecond
		}
		x.P50, x.P99 = quantile(buckets, 0.50), quantile(buckets, 0.99)
		return x, err
	})
	if err != nil {
		return nil, s.dbErr(ctx, "stats", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT version_id, count(DISTINCT user_ref) FROM mp_active_users WHERE app_id = $1 AND day >= $2::date GROUP BY version_id`, appID, since)
	if err != nil {
		return nil, s.dbErr(ctx, "stats", err)
	}
	_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct{}, error) {
		var v, n int64
		err := r.Scan(&v, &n)
		st.ActiveByVersion[v] = n
		return struct{}{}, err
	})
	if err != nil {
		return nil, s.dbErr(ctx, "stats", err)
	}
	rows, err = s.pool.Query(ctx, `WITH days AS (SELECT generate_series($2::date, (now() AT TIME ZONE 'UTC')::date, '1 day')::date AS day)
		SELECT d.day,
			coalesce((SELECT sum(invocations) FROM mp_stats WHERE app_id = $1 AND minute >= d.day AND minute < d.day + 1), 0),
			coalesce((SELECT sum(errors) FROM mp_stats WHERE app_id = $1 AND minute >= d.day AND minute < d.day + 1), 0),
			(SELECT count(DISTINCT user_ref) FROM mp_active_users WHERE app_id = $1 AND day = d.day),
			(SELECT count(*) FROM mp_installs WHERE app_id = $1 AND installed_at >= d.day AND installed_at < d.day + 1),
			coalesce((SELECT sum(amount_fen) FROM mp_payments WHERE app_id = $1 AND at >= d.day AND at < d.day + 1), 0)
		FROM days d ORDER BY d.day LIMIT 400`, appID, since)
	if err != nil {
		return nil, s.dbErr(ctx, "stats", err)
	}
	st.Days, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (DayStats, error) {
		var d DayStats
		err := r.Scan(&d.Day, &d.Invocations, &d.Errors, &d.ActiveUsers, &d.Installs, &d.PaymentFen)
		return d, err
	})
	if err != nil {
		return nil, s.dbErr(ctx, "stats", err)
	}
	return st, nil
}

// quantile returns the upper bound of the bucket holding quantile q.
func quantile(buckets []int64, q float64) time.Duration {
	var n int64
	for _, b := range buckets {
		n += b
	}
	if n == 0 {
		return 0
	}
	target := int64(q*float64(n) + 0.5)
	if target < 1 {
		target = 1
	}
	var cum int64
	for i, b := range buckets {
		cum += b
		if cum >= target {
			return time.Duration(int64(1)<<(i+1)) * time.Microsecond
		}
	}
	return time.Duration(int64(1)<<len(buckets)) * time.Microsecond
}

var _ = jifu.CodeInvalid

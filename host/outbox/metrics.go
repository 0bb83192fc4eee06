package outbox

import "github.com/prometheus/client_golang/prometheus"

// metrics counts delivery attempts; per app would be too many series, so
// per sink and outcome.
type metrics struct {
	attempts *prometheus.CounterVec   // sink, outcome: delivered | failed | dead
	duration *prometheus.HistogramVec // sink
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jifu_outbox_attempts_total", Help: "Event delivery attempts by sink and outcome (delivered, failed, dead).",
		}, []string{"sink", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jifu_outbox_attempt_seconds", Help: "Event delivery attempt duration by sink.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"sink"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.attempts, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

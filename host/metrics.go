package host

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the host's Prometheus collectors, registered on the registerer
// given in Config (never the global default).
type metrics struct {
	invocations *prometheus.CounterVec   // app, entry, code
	latency     *prometheus.HistogramVec // app, entry
	hostCalls   *prometheus.CounterVec   // app, function, code
	instances   *prometheus.GaugeVec     // app: live instances
	discarded   *prometheus.CounterVec   // app, reason
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jifu_invocations_total", Help: "Guest invocations by app, entry point and result code.",
		}, []string{"app", "entry", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jifu_invocation_seconds", Help: "Guest invocation latency, pool wait included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"app", "entry"}),
		hostCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jifu_host_calls_total", Help: "Host function calls by app, function and result code.",
		}, []string{"app", "function", "code"}),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jifu_instances", Help: "Live guest instances by app.",
		}, []string{"app"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jifu_instances_discarded_total", Help: "Instances discarded by app and reason.",
		}, []string{"app", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.invocations, m.latency, m.hostCalls, m.instances, m.discarded)
	}
	return m
}

// appMetrics are one app version's collectors for the outcomes of every
// request ("ok" invocations and host calls, latency, live instances),
// resolved once at Load so that an invocation does not hash label values
// and take the vectors' locks. Other outcomes resolve their labels when
// they happen.
type appMetrics struct {
	m         *metrics
	slug      string
	latency   map[string]prometheus.Observer   // by entry point
	ok        map[string]prometheus.Counter    // invocations by entry point, code "ok"
	hostOK    map[*hostFunc]prometheus.Counter // host calls by function, code "ok"
	instances prometheus.Gauge
}

func (m *metrics) forApp(slug string, entries []string, fns map[string]*hostFunc) *appMetrics {
	am := &appMetrics{
		m: m, slug: slug,
		latency:   map[string]prometheus.Observer{},
		ok:        map[string]prometheus.Counter{},
		hostOK:    map[*hostFunc]prometheus.Counter{},
		instances: m.instances.WithLabelValues(slug),
	}
	for _, e := range entries {
		am.latency[e] = m.latency.WithLabelValues(slug, e)
		am.ok[e] = m.invocations.WithLabelValues(slug, e, "ok")
	}
	for _, f := range fns {
		am.hostOK[f] = m.hostCalls.WithLabelValues(slug, f.name, "ok")
	}
	return am
}

// invocation counts one invocation of entry with its result code.
func (am *appMetrics) invocation(entry, code string, d time.Duration) {
	if o, ok := am.latency[entry]; ok {
		o.Observe(d.Seconds())
	} else {
		am.m.latency.WithLabelValues(am.slug, entry).Observe(d.Seconds())
	}
	if c, ok := am.ok[entry]; ok && code == "ok" {
		c.Inc()
		return
	}
	am.m.invocations.WithLabelValues(am.slug, entry, code).Inc()
}

// hostCall counts one host call of f with its result code.
func (am *appMetrics) hostCall(f *hostFunc, code string) {
	if c, ok := am.hostOK[f]; ok && code == "ok" {
		c.Inc()
		return
	}
	am.m.hostCalls.WithLabelValues(am.slug, f.name, code).Inc()
}

func (am *appMetrics) discarded(reason string) prometheus.Counter {
	return am.m.discarded.WithLabelValues(am.slug, reason)
}

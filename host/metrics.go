package host

import (
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

package watch

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/queue"
)

// Metrics are watch's Prometheus metrics. The queue's figures are read
// from the queue at each scrape; the counters count this process's work.
type Metrics struct {
	pathsPushed   prometheus.Counter
	pathsPresent  prometheus.Counter
	narBytes      prometheus.Counter
	fileBytes     prometheus.Counter
	batches       prometheus.Counter
	pushFailures  prometheus.Counter
	failedEntries prometheus.Counter
	storeQueued   prometheus.Counter
	duration      prometheus.Histogram
}

// NewMetrics registers watch's metrics on reg, with those of q.
func NewMetrics(reg prometheus.Registerer, q *queue.Queue) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "nixbucket", Subsystem: "watch", Name: name, Help: help})
	}
	m := &Metrics{
		pathsPushed:   counter("pushed_paths_total", "Store paths uploaded (their NAR and narinfo written)."),
		pathsPresent:  counter("present_paths_total", "Store paths of pushed closures that the cache already had."),
		narBytes:      counter("pushed_nar_bytes_total", "Uncompressed NAR bytes of the store paths uploaded."),
		fileBytes:     counter("uploaded_bytes_total", "Compressed NAR bytes uploaded."),
		batches:       counter("batches_total", "Batches pushed successfully."),
		pushFailures:  counter("push_failures_total", "Batch pushes that failed (each is retried, or its entries failed)."),
		failedEntries: counter("failed_entries_total", "Queue entries given up on (failed): path gone from the local store, or out of attempts."),
		storeQueued:   counter("store_paths_queued_total", "New valid paths of the local store queued by --watch-store."),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "nixbucket", Subsystem: "watch", Name: "batch_duration_seconds",
			Help:    "Time to push a batch (closure, presence check, uploads), successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 12),
		}),
	}
	reg.MustRegister(m.pathsPushed, m.pathsPresent, m.narBytes, m.fileBytes, m.batches, m.pushFailures,
		m.failedEntries, m.storeQueued, m.duration, &queueCollector{q: q})
	return m
}

// batchDone counts a batch push that returned res and err (res nil when
// nothing was pushed).
func (m *Metrics) batchDone(res *push.Result, err error, d time.Duration) {
	if m == nil {
		return
	}
	if err != nil {
		m.pushFailures.Inc()
		m.duration.Observe(d.Seconds())
		return
	}
	if res == nil {
		return
	}
	m.duration.Observe(d.Seconds())
	m.batches.Inc()
	m.pathsPushed.Add(float64(res.Pushed))
	m.pathsPresent.Add(float64(res.Skipped))
	m.narBytes.Add(float64(res.NarBytes))
	m.fileBytes.Add(float64(res.FileBytes))
}

// failed counts n entries given up on.
func (m *Metrics) failed(n int) {
	if m != nil {
		m.failedEntries.Add(float64(n))
	}
}

// queued counts n paths queued by the store watcher.
func (m *Metrics) queued(n int) {
	if m != nil {
		m.storeQueued.Add(float64(n))
	}
}

// queueCollector reads the queue's status at each scrape.
type queueCollector struct {
	q *queue.Queue
}

var (
	entriesDesc = prometheus.NewDesc("nixbucket_watch_queue_entries",
		"Entries in the queue, by state: pending (waiting, or due for a retry later), inflight (being pushed), failed (given up on).",
		[]string{"state"}, nil)
	oldestDesc = prometheus.NewDesc("nixbucket_watch_queue_oldest_pending_timestamp_seconds",
		"When the oldest pending entry was queued, in seconds since the epoch; absent when none is pending.", nil, nil)
	lastSuccessDesc = prometheus.NewDesc("nixbucket_watch_last_success_timestamp_seconds",
		"When entries were last pushed and marked done, in seconds since the epoch (kept in the queue across restarts); absent if never.", nil, nil)
	doneDesc = prometheus.NewDesc("nixbucket_watch_queue_done_total",
		"Entries ever pushed and marked done in this queue, by any watch.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- entriesDesc
	ch <- oldestDesc
	ch <- lastSuccessDesc
	ch <- doneDesc
}

// Collect implements prometheus.Collector.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.q.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(entriesDesc, err)
		return
	}
	for _, s := range []struct {
		state queue.State
		n     int
	}{{queue.Pending, st.Pending}, {queue.InFlight, st.InFlight}, {queue.Failed, st.Failed}} {
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(s.n), string(s.state))
	}
	if st.Pending > 0 {
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, seconds(st.OldestPending))
	}
	if !st.LastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, seconds(st.LastSuccess))
	}
	ch <- prometheus.MustNewConstMetric(doneDesc, prometheus.CounterValue, float64(st.Pushed))
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

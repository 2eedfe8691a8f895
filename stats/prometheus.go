package stats

import (
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/nixbucket/nixbucket/redact"
	"github.com/nixbucket/nixbucket/s3cache"
)

// The figures of a report as Prometheus metrics (Collector). Every one is
// a gauge: the state of the bucket when it was measured.
var (
	descObjects = prometheus.NewDesc("nixbucket_cache_objects",
		"Objects in the cache's bucket, by kind of key (narinfo, nar, listing, log, root manifest, upstream record, other).", []string{"kind"}, nil)
	descBytes = prometheus.NewDesc("nixbucket_cache_bytes",
		"Bytes of the objects in the cache's bucket, by kind of key.", []string{"kind"}, nil)
	descRootPaths = prometheus.NewDesc("nixbucket_cache_root_paths",
		"Store paths in the closure of the root's newest manifest.", []string{"root"}, nil)
	descRootNarBytes = prometheus.NewDesc("nixbucket_cache_root_nar_bytes",
		"NarSize (uncompressed) of the closure of the root's newest manifest.", []string{"root"}, nil)
	descRootStoredBytes = prometheus.NewDesc("nixbucket_cache_root_stored_bytes",
		"Bytes of the NAR objects of the closure of the root's newest manifest, each counted once.", []string{"root"}, nil)
	descRootManifests = prometheus.NewDesc("nixbucket_cache_root_manifests",
		"Manifests of the root (its pushes that gc keeps).", []string{"root"}, nil)
	descRootMissing = prometheus.NewDesc("nixbucket_cache_root_missing_paths",
		"Paths of the root's newest manifest whose narinfo is not in the cache (and not left upstream).", []string{"root"}, nil)
	descRootUpstream = prometheus.NewDesc("nixbucket_cache_root_upstream_paths",
		"Paths of the root's newest manifest that the push left to an upstream cache.", []string{"root"}, nil)
	descRootPinned = prometheus.NewDesc("nixbucket_cache_root_pinned",
		"1 if the root is pinned (gc keeps all of its manifests), else 0.", []string{"root"}, nil)
	descRootNewest = prometheus.NewDesc("nixbucket_cache_root_newest_manifest_timestamp_seconds",
		"When the root's newest manifest was written (its last push), in Unix seconds.", []string{"root"}, nil)
	descNewest = prometheus.NewDesc("nixbucket_cache_newest_manifest_timestamp_seconds",
		"When the newest root manifest of any root was written (the last push with a root), in Unix seconds.", nil, nil)
	descOrphans = prometheus.NewDesc("nixbucket_cache_orphan_nars",
		"NAR objects no narinfo refers to (left by killed pushes, or by narinfos deleted since).", nil, nil)
	descOrphanBytes = prometheus.NewDesc("nixbucket_cache_orphan_nar_bytes",
		"Bytes of the NAR objects no narinfo refers to.", nil, nil)
	descMissingNARs = prometheus.NewDesc("nixbucket_cache_narinfos_missing_nar",
		"Narinfos whose NAR object is not in the cache.", nil, nil)
	descUpstreamRefs = prometheus.NewDesc("nixbucket_cache_upstream_references",
		"Store paths that narinfos refer to and that were left to an upstream cache.", nil, nil)
	descUploads = prometheus.NewDesc("nixbucket_cache_unfinished_uploads",
		"Unfinished multipart uploads (MinIO lists them only by exact key: 0 there).", nil, nil)
	descReclaimable = prometheus.NewDesc("nixbucket_cache_gc_reclaimable_objects",
		"Objects gc's planner finds unreachable and older than the grace: what its next runs would delete.", nil, nil)
	descReclaimableBytes = prometheus.NewDesc("nixbucket_cache_gc_reclaimable_bytes",
		"Bytes of the objects gc's next runs would delete.", nil, nil)
	descReclaimableNow = prometheus.NewDesc("nixbucket_cache_gc_reclaimable_now_objects",
		"Objects a gc run now would delete (condemned at least a grace ago).", nil, nil)
	descReclaimableNowBytes = prometheus.NewDesc("nixbucket_cache_gc_reclaimable_now_bytes",
		"Bytes of the objects a gc run now would delete.", nil, nil)
	descGCRefuses = prometheus.NewDesc("nixbucket_cache_gc_refuses",
		"1 if gc would delete nothing because it cannot account for something in the bucket (stats --json's notes say what), else 0.", nil, nil)
	descLastGC = prometheus.NewDesc("nixbucket_cache_last_gc_timestamp_seconds",
		"When the last gc run that finished ended, in Unix seconds; absent if gc has not run.", nil, nil)
	descRatio = prometheus.NewDesc("nixbucket_cache_compression_ratio",
		"NarSize over the stored size of the NARs of the paths whose NAR is in the cache: 3 means NARs take a third of their size.", nil, nil)
	descMeasured = prometheus.NewDesc("nixbucket_cache_stats_timestamp_seconds",
		"When these figures were measured (the bucket server's clock), in Unix seconds.", nil, nil)
)

// allDescs lists every metric a Collector may send.
var allDescs = []*prometheus.Desc{descObjects, descBytes, descRootPaths, descRootNarBytes, descRootStoredBytes,
	descRootManifests, descRootMissing, descRootUpstream, descRootPinned, descRootNewest, descNewest, descOrphans,
	descOrphanBytes, descMissingNARs, descUpstreamRefs, descUploads, descReclaimable, descReclaimableBytes,
	descReclaimableNow, descReclaimableNowBytes, descGCRefuses, descLastGC, descRatio, descMeasured}

// Collector is a prometheus.Collector of a report's figures, each a
// gauge named nixbucket_cache_…; register it wrapped with a cache label
// (WritePrometheus does).
type Collector struct {
	r *Report
}

// NewCollector returns a Collector of r's figures.
func NewCollector(r *Report) *Collector { return &Collector{r: r} }

// Describe sends the descriptions of every metric Collect may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect sends the report's figures: objects and bytes of every kind the
// report counts, each root's, and the cache's own; a timestamp only when
// known.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	bool01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, k := range slices.Sorted(maps.Keys(r.ByKind)) {
		gauge(descObjects, float64(r.ByKind[k].Objects), k)
		gauge(descBytes, float64(r.ByKind[k].Bytes), k)
	}
	var newest float64
	for _, root := range r.Roots {
		gauge(descRootPaths, float64(root.Paths), root.Name)
		gauge(descRootNarBytes, float64(root.NarSize), root.Name)
		gauge(descRootStoredBytes, float64(root.StoredBytes), root.Name)
		gauge(descRootManifests, float64(root.Manifests), root.Name)
		gauge(descRootMissing, float64(root.Missing), root.Name)
		gauge(descRootUpstream, float64(root.Upstream), root.Name)
		gauge(descRootPinned, bool01(root.Pinned), root.Name)
		if !root.Newest.IsZero() {
			t := unixSeconds(root.Newest.UnixNano())
			gauge(descRootNewest, t, root.Name)
			newest = max(newest, t)
		}
	}
	if newest > 0 {
		gauge(descNewest, newest)
	}
	gauge(descOrphans, float64(r.Unaccounted.Objects))
	gauge(descOrphanBytes, float64(r.Unaccounted.Bytes))
	gauge(descMissingNARs, float64(r.MissingNARs))
	gauge(descUpstreamRefs, float64(r.UpstreamReferences))
	if r.Uploads >= 0 {
		gauge(descUploads, float64(r.Uploads))
	}
	gauge(descReclaimable, float64(r.Reclaimable.Objects))
	gauge(descReclaimableBytes, float64(r.Reclaimable.Bytes))
	gauge(descReclaimableNow, float64(r.ReclaimableNow.Objects))
	gauge(descReclaimableNowBytes, float64(r.ReclaimableNow.Bytes))
	gauge(descGCRefuses, bool01(r.GCRefuses))
	if !r.LastGC.IsZero() {
		gauge(descLastGC, unixSeconds(r.LastGC.UnixNano()))
	}
	if r.KnownStored > 0 {
		gauge(descRatio, float64(r.KnownNarSize)/float64(r.KnownStored))
	}
	if !r.Time.IsZero() {
		gauge(descMeasured, unixSeconds(r.Time.UnixNano()))
	}
}

func unixSeconds(ns int64) float64 { return float64(ns) / 1e9 }

// WritePrometheus writes r's figures to w in the Prometheus text
// exposition format (version 0.0.4, what node_exporter's textfile
// collector reads), every series labelled cache="<cache>" (CacheLabel).
func WritePrometheus(w io.Writer, r *Report, cache string) error {
	reg := prometheus.NewPedanticRegistry()
	if err := prometheus.WrapRegistererWith(prometheus.Labels{"cache": cache}, reg).Register(NewCollector(r)); err != nil {
		return fmt.Errorf("registering the figures: %w", err)
	}
	families, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("gathering the figures: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("writing the figures: %w", err)
		}
	}
	return nil
}

// CacheLabel is the value of the cache label of a cache's metrics: its
// URL without what is not its identity (signing keys, compression…), the
// endpoint's userinfo dropped and anything secret-shaped redacted.
func CacheLabel(u *s3cache.URL) string {
	id := s3cache.URL{Scheme: u.Scheme, Bucket: u.Bucket, Dir: u.Dir, Endpoint: u.Endpoint, Region: u.Region, CompressionLevel: -1}
	if e, err := url.Parse(u.Endpoint); err == nil && e.User != nil {
		e.User = nil
		id.Endpoint = e.String()
	}
	return redact.String(id.String())
}

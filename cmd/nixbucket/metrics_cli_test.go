package main

import (
	"bytes"
	"math"
	"os/exec"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// promtoolCheck fails the test unless `promtool check metrics` accepts
// text without a complaint: it prints lint problems (a counter without
// _total, a metric without HELP…) and exits non-zero for them.
func promtoolCheck(t *testing.T, what, text string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (%v): `make setup` installs it (Debian's prometheus package)", err)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics of %s: %v\n%s\n--- the metrics:\n%s", what, err, out, text)
	}
}

// promFamilies parses the Prometheus text format.
func promFamilies(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing the metrics: %v\n%s", err, text)
	}
	return fams
}

// promSeries returns the value of the series of name whose labels include
// labels ("k=v" each), and whether there is one; more than one fails the
// test. A histogram's value is its sample count.
func promSeries(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	t.Helper()
	f := fams[name]
	if f == nil {
		return 0, false
	}
	var found []float64
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			found = append(found, m.GetGauge().GetValue())
		case m.Counter != nil:
			found = append(found, m.GetCounter().GetValue())
		case m.Histogram != nil:
			found = append(found, float64(m.GetHistogram().GetSampleCount()))
		default:
			found = append(found, m.GetUntyped().GetValue())
		}
	}
	if len(found) > 1 {
		t.Fatalf("%d series of %s match %v", len(found), name, labels)
	}
	if len(found) == 0 {
		return 0, false
	}
	return found[0], true
}

// promValue is promSeries of a series that must exist; absent is 0 for
// counters that have not counted yet (label sets appear on first use).
func promValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, _ := promSeries(t, fams, name, labels...)
	return v
}

// wantValue checks a series' value.
func wantValue(t *testing.T, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := promSeries(t, fams, name, labels...)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
		return
	}
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// labelEverywhere checks that every series of every family has label k=v.
func labelEverywhere(t *testing.T, fams map[string]*dto.MetricFamily, prefix, k, v string) {
	t.Helper()
	for name, f := range fams {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, m := range f.GetMetric() {
			ok := false
			for _, l := range m.GetLabel() {
				ok = ok || l.GetName() == k && l.GetValue() == v
			}
			if !ok {
				t.Errorf("a series of %s lacks %s=%q: %v", name, k, v, m.GetLabel())
			}
		}
	}
}

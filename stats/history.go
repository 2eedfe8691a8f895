package stats

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// HistoryKey is the key of the growth history: one JSON Point a line.
const HistoryKey = layout.StatsDir + "history.jsonl"

// Point is one recorded measurement.
type Point struct {
	// Time is when the figures were measured.
	Time time.Time `json:"time"`
	// Objects and Bytes count every object.
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// NarInfos is the number of store paths.
	NarInfos int `json:"narinfos"`
	// NarBytes is the stored size of the NARs.
	NarBytes int64 `json:"narBytes"`
	// Roots is the number of root names.
	Roots int `json:"roots"`
	// Reclaimable is what gc's plan would free, in bytes (Report.Reclaimable).
	Reclaimable int64 `json:"reclaimableBytes"`
}

// PointOf summarises a report as a history point.
func PointOf(r *Report) Point {
	return Point{Time: r.Time, Objects: r.Total.Objects, Bytes: r.Total.Bytes, NarInfos: r.Paths,
		NarBytes: r.ByKind[KindNAR].Bytes, Roots: len(r.Roots), Reclaimable: r.Reclaimable.Bytes}
}

// History reads the recorded points, oldest first; none if there is no
// history yet. Lines that do not parse are skipped.
func History(ctx context.Context, b s3cache.Bucket) ([]Point, error) {
	rc, err := b.Get(ctx, HistoryKey)
	if errors.Is(err, s3cache.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", HistoryKey, err)
	}
	defer rc.Close()
	var out []Point
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var p Point
		if json.Unmarshal(sc.Bytes(), &p) == nil && !p.Time.IsZero() {
			out = append(out, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", HistoryKey, err)
	}
	return out, nil
}

// Record appends p to the history in b (a GET and a PUT; two recorders at
// the same instant may lose one point) and returns the whole history.
func Record(ctx context.Context, b s3cache.Bucket, p Point) ([]Point, error) {
	var old []byte
	rc, err := b.Get(ctx, HistoryKey)
	switch {
	case errors.Is(err, s3cache.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", HistoryKey, err)
	default:
		old, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", HistoryKey, err)
		}
	}
	line, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	data := append(append(old, line...), '\n')
	if err := b.Put(ctx, HistoryKey, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "application/x-ndjson"}); err != nil {
		return nil, fmt.Errorf("writing %s: %w", HistoryKey, err)
	}
	var out []Point
	for line := range bytes.Lines(data) {
		var q Point
		if json.Unmarshal(line, &q) == nil && !q.Time.IsZero() {
			out = append(out, q)
		}
	}
	return out, nil
}

package s3cache

// White-box tests of the multipart engine: how many buffers it holds and
// what it does on failure are invisible through a real server.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
)

// recordingUpload is a multipartUpload that records what the streamer
// does. Parts whose number is in fail fail.
type recordingUpload struct {
	mu        sync.Mutex
	buffers   map[*byte]bool // distinct part buffers seen
	inFlight  int
	maxFlight int
	parts     map[int32][]byte
	fail      map[int32]error
	completed []string
	aborted   bool
	abortCtx  error // ctx.Err() seen by abort
	gate      chan struct{}
}

func newRecordingUpload() *recordingUpload {
	return &recordingUpload{buffers: map[*byte]bool{}, parts: map[int32][]byte{}, fail: map[int32]error{}}
}

func (u *recordingUpload) uploadPart(ctx context.Context, n int32, body []byte) (string, error) {
	u.mu.Lock()
	u.buffers[&body[:1][0]] = true
	u.inFlight++
	u.maxFlight = max(u.maxFlight, u.inFlight)
	gate := u.gate
	u.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inFlight--
	if err := u.fail[n]; err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	u.parts[n] = bytes.Clone(body)
	return "etag", nil
}

func (u *recordingUpload) complete(ctx context.Context, etags []string) error {
	u.completed = etags
	return nil
}

func (u *recordingUpload) abort(ctx context.Context) error {
	u.aborted = true
	u.abortCtx = ctx.Err()
	return nil
}

// stream runs the streamer as S3Bucket.Put does: the first part is read
// by the caller.
func stream(ctx context.Context, up multipartUpload, r io.Reader, size, partSize int64, concurrency int) (int64, error) {
	s := &streamer{key: "k", size: size, partSize: partSize, concurrency: concurrency, pool: &bufPool{}}
	first := s.pool.get(partSize)
	if _, _, err := readPart(r, *first); err != nil {
		return 0, err
	}
	return s.upload(ctx, up, first, r)
}

func TestStreamerBoundsBuffers(t *testing.T) {
	t.Parallel()
	const partSize, parts, concurrency = 1000, 37, 3
	data := make([]byte, partSize*parts+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	up := newRecordingUpload()
	total, err := stream(t.Context(), up, bytes.NewReader(data), -1, partSize, concurrency)
	if err != nil || total != int64(len(data)) {
		t.Fatalf("upload = %d, %v; want %d, nil", total, err, len(data))
	}
	if len(up.buffers) > concurrency || up.maxFlight > concurrency {
		t.Errorf("used %d buffers, %d parts in flight; want at most %d of each", len(up.buffers), up.maxFlight, concurrency)
	}
	if len(up.completed) != parts+1 || up.aborted {
		t.Fatalf("completed with %d parts (aborted %v), want %d", len(up.completed), up.aborted, parts+1)
	}
	var got []byte
	for n := int32(1); n <= parts+1; n++ {
		got = append(got, up.parts[n]...)
	}
	if !bytes.Equal(got, data) {
		t.Error("the parts in order do not make up the stream")
	}
}

func TestStreamerPartFailureAborts(t *testing.T) {
	t.Parallel()
	boom := errors.New("part 3 failed")
	up := newRecordingUpload()
	up.fail[3] = boom
	_, err := stream(t.Context(), up, bytes.NewReader(make([]byte, 10_000)), -1, 1000, 2)
	if !errors.Is(err, boom) {
		t.Errorf("error = %v, want the part's error", err)
	}
	if !up.aborted || up.completed != nil {
		t.Errorf("aborted %v, completed %v; want aborted and not completed", up.aborted, up.completed)
	}
}

func TestStreamerCancelAbortsWithLiveContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	up := newRecordingUpload()
	up.gate = make(chan struct{}) // parts wait until ctx is cancelled
	go cancel()
	_, err := stream(ctx, up, bytes.NewReader(make([]byte, 10_000)), -1, 1000, 2)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if !up.aborted || up.abortCtx != nil || up.completed != nil {
		t.Errorf("aborted %v with ctx error %v, completed %v; want an abort with a live context, no completion",
			up.aborted, up.abortCtx, up.completed)
	}
}

func TestPartSizeFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, size, want int64 }{
		{0, 0, MinPartSize},
		{1, 100, MinPartSize},
		{8 << 20, 0, 8 << 20},
		{MinPartSize, 10000 * MinPartSize, MinPartSize},
		{MinPartSize, 10000*MinPartSize + 1, 6 << 20},
		{MinPartSize, 200 << 30, 21 << 20},
		{MinPartSize, 1 << 50, MaxPartSize},
	} {
		if got := partSizeFor(tc.base, tc.size); got != tc.want {
			t.Errorf("partSizeFor(%d, %d) = %d, want %d", tc.base, tc.size, got, tc.want)
		}
	}
}

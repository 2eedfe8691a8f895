package httpcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// ErrUnsupported is returned (wrapped) by List and Delete: an HTTP binary
// cache has no listing, and pushes delete nothing.
var ErrUnsupported = errors.New("not supported by an HTTP binary cache")

// Options configure a Bucket.
type Options struct {
	// User and Token are sent with HTTP basic authentication when Token
	// is not empty (the token is the password; User defaults to
	// "nixbucket").
	User, Token string
	// Net gives the deadlines (ConnectTimeout, StallTimeout, RetryFor,
	// MaxBackoff) and, if set, the HTTP client, as for an S3 bucket.
	Net s3cache.S3Options
	// Logger receives a WARN line before each retry; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Bucket is an HTTP binary cache seen as an s3cache.Bucket.
type Bucket struct {
	base   *url.URL // without a trailing slash, no user info
	where  string   // base as printed
	opts   Options
	client *http.Client
	log    *slog.Logger
}

var _ s3cache.Bucket = (*Bucket)(nil)

// New returns the Bucket of the HTTP(S) binary cache at rawURL, e.g.
// https://cache.example.org/ci. It makes no request.
func New(rawURL string, opts Options) (*Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing cache URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("cache URL %s: want http(s)://HOST[/PATH]", u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("cache URL %s: put no user or password in the URL; give the push token with NIXBUCKET_PUSH_TOKEN or a netrc file", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("cache URL %s: parameters are not supported for an http(s) push; drop ?%s", u.Redacted(), u.RawQuery)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	if opts.User == "" {
		opts.User = "nixbucket"
	}
	if opts.Net.RetryFor <= 0 {
		opts.Net.RetryFor = s3cache.DefaultRetryFor
	}
	if opts.Net.MaxBackoff <= 0 {
		opts.Net.MaxBackoff = min(20*time.Second, max(opts.Net.RetryFor/5, 100*time.Millisecond))
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Bucket{base: u, where: u.String(), opts: opts, client: s3cache.NewHTTPClient(opts.Net), log: log}, nil
}

// String is the cache's URL.
func (b *Bucket) String() string { return b.where }

func (b *Bucket) keyURL(key string) string {
	u := *b.base
	u.Path += "/" + key
	return u.String()
}

// Stat implements s3cache.Bucket with a HEAD.
func (b *Bucket) Stat(ctx context.Context, key string) (s3cache.ObjectInfo, error) {
	resp, err := b.do(ctx, http.MethodHead, key, nil, 0, s3cache.PutOptions{})
	if err != nil {
		return s3cache.ObjectInfo{}, err
	}
	resp.Body.Close()
	return info(key, resp), nil
}

// Get implements s3cache.Bucket with a GET.
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := b.GetWithInfo(ctx, key)
	return rc, err
}

// GetWithInfo implements s3cache.InfoGetter: one GET.
func (b *Bucket) GetWithInfo(ctx context.Context, key string) (io.ReadCloser, s3cache.ObjectInfo, error) {
	resp, err := b.do(ctx, http.MethodGet, key, nil, 0, s3cache.PutOptions{})
	if err != nil {
		return nil, s3cache.ObjectInfo{}, err
	}
	return resp.Body, info(key, resp), nil
}

func info(key string, resp *http.Response) s3cache.ObjectInfo {
	i := s3cache.ObjectInfo{Key: key, Size: resp.ContentLength, ETag: strings.Trim(resp.Header.Get("ETag"), `"`), ContentType: resp.Header.Get("Content-Type")}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		i.LastModified = t
	}
	return i
}

// Put implements s3cache.Bucket with a PUT: of size bytes, or streamed
// with chunked encoding when size is -1. The server stores the object
// only once the body is complete.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts s3cache.PutOptions) error {
	cr := &countingReader{r: r}
	resp, err := b.do(ctx, http.MethodPut, key, cr, size, opts)
	if err != nil {
		if n, eof, rerr := cr.state(); size >= 0 && n != size && rerr == nil && eof {
			return fmt.Errorf("putting %s: read %d bytes, want %d: %w", key, n, size, s3cache.ErrSizeMismatch)
		}
		return err
	}
	resp.Body.Close()
	return nil
}

// List implements s3cache.Bucket: an HTTP binary cache cannot list.
func (b *Bucket) List(ctx context.Context, prefix string, fn func(s3cache.ObjectInfo) error) error {
	return fmt.Errorf("listing %s: %w", b.where, ErrUnsupported)
}

// Delete implements s3cache.Bucket: it refuses, deleting nothing.
func (b *Bucket) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	return fmt.Errorf("deleting %s from %s: %w", keys[0], b.where, ErrUnsupported)
}

// countingReader counts the bytes of a request body and notes how it
// ended. Its figures are read with state: the transport reads the body in
// a goroutine of its own.
type countingReader struct {
	r io.Reader

	mu  sync.Mutex
	n   int64
	eof bool
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += int64(n)
	switch {
	case err == io.EOF:
		c.eof = true
	case err != nil:
		c.err = err
	}
	return n, err
}

// state returns the bytes read, whether the reader reached its end, and
// the error it failed with.
func (c *countingReader) state() (n int64, eof bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.eof, c.err
}

// rewind seeks the reader back to its start for another attempt.
func (c *countingReader) rewind(s io.Seeker) error {
	if _, err := s.Seek(0, io.SeekStart); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.eof = 0, false
	return nil
}

// attemptBody is the body of one attempt. The transport may close (and
// stop reading) a body after Do returned (http.RoundTripper's contract):
// done waits for that, and for a Read in flight, before the body is
// looked at or sent again; a Read after Close fails.
type attemptBody struct {
	cr *countingReader

	mu     sync.Mutex // held by a Read in flight
	closed chan struct{}
	once   sync.Once
}

func newAttemptBody(cr *countingReader) *attemptBody {
	return &attemptBody{cr: cr, closed: make(chan struct{})}
}

func (a *attemptBody) Read(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.closed:
		return 0, errAttemptOver
	default:
	}
	return a.cr.Read(p)
}

// Close ends the attempt's reads; the transport calls it.
func (a *attemptBody) Close() error {
	a.once.Do(func() { close(a.closed) })
	return nil
}

// done waits until the transport has closed the body and no Read is in
// flight; when ctx ends first, it closes the body and returns at once
// (the caller gives the body up).
func (a *attemptBody) done(ctx context.Context) {
	select {
	case <-a.closed:
	case <-ctx.Done():
		a.Close()
		return
	}
	a.mu.Lock()
	//lint:ignore SA2001 an empty critical section: it waits for a Read in flight
	a.mu.Unlock()
}

// errAttemptOver fails a Read of an attempt's body after its request ended.
var errAttemptOver = errors.New("request body read after its request ended")

package s3cache

// This file and retry.go are the only files that import the AWS SDK.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrUnreachable is returned (wrapped) when the S3 endpoint cannot be
// connected to, after the retries.
var ErrUnreachable = errors.New("endpoint unreachable")

// Credentials are a static S3 access key pair that replaces the AWS
// credential chain. They never print: String and LogValue hide the secret.
type Credentials struct {
	// AccessKeyID is the access key's id.
	AccessKeyID string
	// SecretAccessKey is the secret; never logged.
	SecretAccessKey string
}

// String shows the access key id only.
func (c Credentials) String() string { return "Credentials{" + c.AccessKeyID + ", secret hidden}" }

// GoString shows the access key id only, also for %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue shows the access key id only.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// S3Options tune an S3Bucket beyond what its URL says. The zero value is
// the default.
type S3Options struct {
	// Credentials, if not nil, replace the AWS credential chain
	// (environment, shared config and the URL's profile).
	Credentials *Credentials
	// ConnectTimeout bounds each TCP connect and TLS handshake; default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// StallTimeout aborts (and retries) an attempt that moves no byte,
	// either way, for this long: waiting for a response, sending a body,
	// or inside a Read of a body that Get returned; default
	// DefaultStallTimeout.
	StallTimeout time.Duration
	// RetryFor is how long one request (or one body being read) keeps
	// retrying transient failures: 5xx, throttling, broken connections,
	// stalls; default DefaultRetryFor.
	RetryFor time.Duration
	// MaxAttempts, if positive, also bounds the attempts of every
	// request, first included. Retries back off exponentially with jitter.
	MaxAttempts int
	// MaxBackoff caps the wait between attempts; default 20s, and at
	// most a fifth of RetryFor.
	MaxBackoff time.Duration
	// ListPageSize is the number of keys per LIST request; default (and
	// S3's maximum) 1000. Tests lower it to page cheaply.
	ListPageSize int
	// DeleteBatchSize is the number of keys per DeleteObjects request;
	// default (and S3's maximum) 1000.
	DeleteBatchSize int
	// HTTPClient, if not nil, sends the requests.
	HTTPClient *http.Client
	// Logger receives a WARN line before every retry, and debug
	// messages; default slog.Default().
	Logger *slog.Logger
}

// S3Bucket is a Bucket in an S3 bucket, through aws-sdk-go-v2. Requests
// that fail with 5xx, SlowDown/throttling or a broken connection are
// retried with backoff and jitter; 403s and a missing bucket fail at once
// with ErrAccessDenied or ErrNoSuchBucket.
type S3Bucket struct {
	client    *s3.Client
	bucket    string
	where     string // endpoint, for messages
	url       *URL
	opts      S3Options
	unsigned  bool // send UNSIGNED-PAYLOAD on PUTs (the signed Content-MD5 covers the body)
	pathStyle bool
	pool      bufPool
	logger    *slog.Logger
	// exists is set once a request showed that the bucket exists; probe
	// serialises the GETs that find out (Stat).
	exists atomic.Bool
	probe  sync.Mutex
}

var (
	_ Bucket      = (*S3Bucket)(nil)
	_ InfoGetter  = (*S3Bucket)(nil)
	_ Multiparter = (*S3Bucket)(nil)
	_ PageLister  = (*S3Bucket)(nil)
	_ RangeLister = (*S3Bucket)(nil)
)

// OpenS3 returns the S3 bucket u names. The endpoint, region, profile and
// addressing style come from u; credentials from opts or the AWS chain.
// Checksums are sent and validated only when an operation requires them,
// as Garage needs. It does not contact the server.
func OpenS3(ctx context.Context, u *URL, opts S3Options) (*S3Bucket, error) {
	if u.Scheme != SchemeS3 {
		return nil, fmt.Errorf("opening S3 bucket: %s is not an s3:// URL", u)
	}
	opts = opts.withDefaults()
	if opts.ListPageSize <= 0 || opts.ListPageSize > 1000 {
		opts.ListPageSize = 1000
	}
	if opts.DeleteBatchSize <= 0 || opts.DeleteBatchSize > 1000 {
		opts.DeleteBatchSize = 1000
	}
	logger := opts.logger()
	region := u.Region
	if region == "" {
		region = DefaultRegion
	}
	load := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithLogger(logging.Nop{}), // errors are returned, not logged by the SDK
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithRetryer(func() aws.Retryer { return newRetryer(opts) }),
	}
	if u.Profile != "" && opts.Credentials == nil {
		load = append(load, config.WithSharedConfigProfile(u.Profile))
	}
	if c := opts.Credentials; c != nil {
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for %s: %w", u, err)
	}
	if cfg.Credentials != nil {
		cfg.Credentials = credentialsProvider{cfg.Credentials}
	}
	b := &S3Bucket{
		bucket:   u.Bucket,
		url:      u,
		opts:     opts,
		unsigned: true,
		logger:   logger,
	}
	pathStyle := u.AddressingStyle == "path" ||
		(u.AddressingStyle != "virtual" && (u.Endpoint != "" || strings.Contains(u.Bucket, ".")))
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if u.Endpoint != "" {
			o.BaseEndpoint = aws.String(u.Endpoint)
			o.EndpointResolverV2 = &cachedEndpoints{base: s3.NewDefaultEndpointResolverV2(), m: map[string]smithyendpoints.Endpoint{}}
		}
		o.UsePathStyle = pathStyle
		o.HTTPClient = httpClient(opts)
		o.APIOptions = append(o.APIOptions, retryMiddleware{b}.add)
	})
	b.client = client
	b.pathStyle = pathStyle
	b.where = u.Endpoint
	if b.where == "" {
		b.where = "AWS region " + region
	}
	return b, nil
}

// httpClient returns opts.HTTPClient, or a new client, behind a
// stallTransport: a server that takes a request and never answers, or
// stops in a body, is retried instead of hanging.
func httpClient(opts S3Options) *http.Client {
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		next := c.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		c.Transport = &stallTransport{next: next, timeout: opts.StallTimeout}
		return &c
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = opts.ConnectTimeout
	t.ForceAttemptHTTP2 = false
	t.MaxIdleConnsPerHost = 128 // parallel uploads and HEADs keep their connections
	return &http.Client{Transport: &stallTransport{next: t, timeout: opts.StallTimeout}}
}

// withDefaults fills in the zero fields.
func (opts S3Options) withDefaults() S3Options {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = DefaultRetryFor
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = maxAttemptsUnlimited
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = min(20*time.Second, max(opts.RetryFor/5, 100*time.Millisecond))
	}
	return opts
}

// credentialsProvider marks the credential chain's errors, so that a
// failure to find credentials is told apart from the server's answers.
type credentialsProvider struct{ aws.CredentialsProvider }

func (p credentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err}
	}
	return c, nil
}

// credentialsError is a failure of the AWS credential chain.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "no credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// cachedEndpoints memoizes the SDK's endpoint rules for a fixed custom
// endpoint: evaluating them compiles regular expressions on every request
// (a seventh of the CPU of a push of small paths), and with the endpoint
// fixed their result does not depend on the object key.
type cachedEndpoints struct {
	base s3.EndpointResolverV2
	mu   sync.Mutex
	m    map[string]smithyendpoints.Endpoint
}

func (c *cachedEndpoints) ResolveEndpoint(ctx context.Context, p s3.EndpointParameters) (smithyendpoints.Endpoint, error) {
	p.Key, p.Prefix, p.CopySource = nil, nil, nil
	k, err := json.Marshal(p)
	if err != nil {
		return c.base.ResolveEndpoint(ctx, p)
	}
	c.mu.Lock()
	e, ok := c.m[string(k)]
	c.mu.Unlock()
	if !ok {
		if e, err = c.base.ResolveEndpoint(ctx, p); err != nil {
			return e, err
		}
		c.mu.Lock()
		c.m[string(k)] = e
		c.mu.Unlock()
	}
	return cloneEndpoint(e), nil
}

// cloneEndpoint copies what the SDK may change of a resolved endpoint: its
// headers, its properties and the auth options among them (the SDK merges
// its own signing properties into those).
func cloneEndpoint(e smithyendpoints.Endpoint) smithyendpoints.Endpoint {
	out := e
	out.Headers = e.Headers.Clone()
	out.Properties = smithy.Properties{}
	out.Properties.SetAll(&e.Properties)
	if opts, ok := smithyauth.GetAuthOptions(&e.Properties); ok {
		clones := make([]*smithyauth.Option, len(opts))
		for i, o := range opts {
			c := *o
			c.IdentityProperties, c.SignerProperties = smithy.Properties{}, smithy.Properties{}
			c.IdentityProperties.SetAll(&o.IdentityProperties)
			c.SignerProperties.SetAll(&o.SignerProperties)
			clones[i] = &c
		}
		smithyauth.SetAuthOptions(&out.Properties, clones)
	}
	return out
}

// CreateBucket creates the bucket u names (for tests and setup); an
// existing bucket owned by the caller is not an error.
func CreateBucket(ctx context.Context, u *URL, opts S3Options) error {
	b, err := OpenS3(ctx, u, opts)
	if err != nil {
		return err
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(u.Bucket)}
	if u.Region != DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(u.Region),
		}
	}
	_, err = b.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return b.wrap("creating bucket", u.Bucket, err)
	}
	return nil
}

// remote returns a RemoteError of the given kind (a sentinel, or nil).
func (b *S3Bucket) remote(kind, cause error, format string, args ...any) error {
	return &RemoteError{Endpoint: b.where, msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// wrap translates an SDK error into this package's errors: "OP KEY: …".
// Everything but a missing key and a cancelled context is a RemoteError.
func (b *S3Bucket) wrap(op, key string, err error) error {
	var (
		code   string
		status int
		ae     smithy.APIError
		re     *awshttp.ResponseError
		ne     *net.OpError
		stall  *StallError
		ce     *credentialsError
	)
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	gaveUp := ""
	if n := attemptsOf(err); n > 1 {
		gaveUp = fmt.Sprintf(" (gave up after %d attempts)", n)
	}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s: %w", op, key, err)
	case errors.As(err, &ce):
		return b.remote(ErrAccessDenied, err,
			"%s %s: no usable AWS credentials for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile= in the URL",
			op, key, b.where)
	case isSchemeMismatch(err):
		return b.remote(ErrUnreachable, err, "%s %s: %s speaks plain HTTP; use http:// in endpoint=", op, key, b.where)
	case code == "NoSuchBucket":
		return b.remote(ErrNoSuchBucket, err, "%s %s: bucket %q does not exist at %s", op, key, b.bucket, b.where)
	case status == http.StatusForbidden || code == "AccessDenied" || code == "InvalidAccessKeyId" ||
		code == "SignatureDoesNotMatch" || code == "XAdminUserNotFound": // versitygw: 404 for an unknown key id
		if code == "" {
			code = "403 Forbidden"
		}
		return b.remote(ErrAccessDenied, err,
			"%s %s: access denied to bucket %q at %s (%s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile and the bucket's permissions",
			op, key, b.bucket, b.where, code)
	case code == "NoSuchKey" || code == "NotFound" || code == "NoSuchUpload" || status == http.StatusNotFound:
		return fmt.Errorf("%s %s: %w", op, key, ErrNotFound)
	case errors.As(err, &stall):
		return b.remote(ErrUnreachable, err, "%s %s: %s stopped answering: %v%s", op, key, b.where, stall, gaveUp)
	case status == 0 && errors.As(err, &ne):
		return b.remote(ErrUnreachable, err, "%s %s: cannot reach %s: %s%s", op, key, b.where, reason(ne), gaveUp)
	}
	if ae != nil {
		// The server's own words, without the SDK's request and host IDs.
		msg := ae.ErrorMessage()
		if msg == "" {
			msg = http.StatusText(status)
		}
		return b.remote(nil, err, "%s %s in bucket %q at %s: %s (%s, HTTP %d)%s", op, key, b.bucket, b.where, msg, code, status, gaveUp)
	}
	return b.remote(nil, err, "%s %s in bucket %q at %s: %s%s", op, key, b.bucket, b.where, reason(err), gaveUp)
}

// Stat implements Bucket with HeadObject. A HEAD response has no body, so
// a missing bucket (or, on versitygw, an unknown access key) answers 404
// as a missing key does: until the bucket is known to exist, a key that
// seems missing is asked for again with a GET, whose error says which.
func (b *S3Bucket) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		err = b.wrap("stating", key, err)
		if errors.Is(err, ErrNotFound) && !b.exists.Load() {
			// One GET at a time: once one says NoSuchKey, the others'
			// 404s are missing keys too.
			b.probe.Lock()
			defer b.probe.Unlock()
			if b.exists.Load() {
				return ObjectInfo{}, err
			}
			rc, info, gerr := b.GetWithInfo(ctx, key)
			if gerr == nil {
				rc.Close() // created meanwhile
				return info, nil
			}
			return ObjectInfo{}, gerr
		}
		return ObjectInfo{}, err
	}
	b.exists.Store(true)
	return ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		LastModified: aws.ToTime(out.LastModified),
		ETag:         strings.Trim(aws.ToString(out.ETag), `"`),
		ContentType:  aws.ToString(out.ContentType),
	}, nil
}

// Get implements Bucket with GetObject.
func (b *S3Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := b.GetWithInfo(ctx, key)
	return rc, err
}

// GetWithInfo implements InfoGetter with GetObject.
func (b *S3Bucket) GetWithInfo(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		err = b.wrap("getting", key, err)
		if errors.Is(err, ErrNotFound) {
			b.exists.Store(true) // NoSuchKey: the bucket is there
		}
		return nil, ObjectInfo{}, err
	}
	b.exists.Store(true)
	etag := aws.ToString(out.ETag)
	body := &resumingBody{ctx: ctx, b: b, key: key, etag: etag, rc: out.Body}
	return body, ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		LastModified: aws.ToTime(out.LastModified),
		ETag:         strings.Trim(aws.ToString(out.ETag), `"`),
		ContentType:  aws.ToString(out.ContentType),
	}, nil
}

// getFrom GETs key from byte off on, if its ETag is still etag (a body
// being resumed).
func (b *S3Bucket) getFrom(ctx context.Context, key, etag string, off int64) (io.ReadCloser, error) {
	out, err := b.getRange(ctx, key, etag, off, -1)
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

// getRange sends a GetObject of the n bytes of key from off on (n < 0: to
// the end), only while its ETag is etag if etag is set. A server that
// ignores the range sends the whole object: its body is skipped to off.
func (b *S3Bucket) getRange(ctx context.Context, key, etag string, off, n int64) (*s3.GetObjectOutput, error) {
	r := "bytes=" + strconv.FormatInt(off, 10) + "-"
	if n > 0 {
		r += strconv.FormatInt(off+n-1, 10)
	}
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: &key, Range: &r}
	if etag != "" {
		in.IfMatch = &etag
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		return nil, b.wrap("getting", key, err)
	}
	if out.ContentRange == nil && off > 0 {
		if _, err := io.CopyN(io.Discard, out.Body, off); err != nil {
			out.Body.Close()
			return nil, b.wrap("getting", key, err)
		}
	}
	return out, nil
}

// payloadOptions are the per-request options of PutObject and UploadPart:
// an unsigned payload. The body is still covered: its Content-MD5 header
// is signed, so it cannot be altered in transit even over plain http; and
// one SHA-256 pass over every uploaded byte is saved.
func (b *S3Bucket) payloadOptions() []func(*s3.Options) {
	if !b.unsigned {
		return nil
	}
	return []func(*s3.Options){s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)}
}

func contentMD5(p []byte) *string {
	sum := md5.Sum(p)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

// Put implements Bucket. An object that fits in one part is sent with one
// PutObject; a longer one is streamed as a multipart upload, PartSize ×
// Concurrency bytes in memory at most, each part retried on its own, the
// upload aborted on any failure. Every request carries Content-MD5.
func (b *S3Bucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	if key == "" {
		return fmt.Errorf("putting %q: %w", key, ErrInvalidKey)
	}
	base := opts.PartSize
	if base == 0 {
		base = b.url.PartSize
	}
	hint := size
	if hint < 0 {
		hint = opts.ExpectedSize
	}
	partSize := partSizeFor(base, hint)
	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = defaultConcurrency
	}
	if opts.ContentType == "" {
		opts.ContentType = "application/octet-stream"
	}

	cr := ctxReader{ctx, r}
	first := b.pool.get(partSize)
	n, eof, err := readPart(cr, *first)
	if err != nil {
		b.pool.put(first)
		return fmt.Errorf("putting %s: reading: %w", key, err)
	}
	if size >= 0 && int64(n) > size {
		b.pool.put(first)
		return checkSize(key, size, int64(n))
	}
	if !eof && size >= 0 && int64(n) == size {
		// Exactly size bytes so far: the stream must end here.
		var one [1]byte
		m, _ := io.ReadFull(cr, one[:])
		n += m
		eof = m == 0
		if err := ctx.Err(); err != nil {
			b.pool.put(first)
			return fmt.Errorf("putting %s: %w", key, err)
		}
		if !eof {
			b.pool.put(first)
			return checkSize(key, size, size+1)
		}
	}
	if eof {
		defer b.pool.put(first)
		if err := checkSize(key, size, int64(n)); err != nil {
			return err
		}
		body := (*first)[:n]
		_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:          &b.bucket,
			Key:             &key,
			Body:            bytes.NewReader(body),
			ContentLength:   aws.Int64(int64(n)),
			ContentMD5:      contentMD5(body),
			ContentType:     aws.String(opts.ContentType),
			CacheControl:    nonEmpty(opts.CacheControl),
			ContentEncoding: nonEmpty(opts.ContentEncoding),
			StorageClass:    types.StorageClass(b.url.StorageClass),
		}, b.payloadOptions()...)
		if err != nil {
			return b.wrap("putting", key, err)
		}
		return nil
	}

	// Started even if ctx is cancelled meanwhile: an upload the server
	// created but whose id we never learnt could not be aborted. A
	// cancelled ctx then makes the streamer abort it at once.
	cctx, cancelCreate := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	up, err := b.client.CreateMultipartUpload(cctx, &s3.CreateMultipartUploadInput{
		Bucket:          &b.bucket,
		Key:             &key,
		ContentType:     aws.String(opts.ContentType),
		CacheControl:    nonEmpty(opts.CacheControl),
		ContentEncoding: nonEmpty(opts.ContentEncoding),
		StorageClass:    types.StorageClass(b.url.StorageClass),
	})
	cancelCreate()
	if err != nil {
		b.pool.put(first)
		return b.wrap("starting multipart upload of", key, err)
	}
	mu := &s3Multipart{b: b, key: key, id: aws.ToString(up.UploadId)}
	s := streamer{key: key, size: size, partSize: partSize, concurrency: concurrency, pool: &b.pool}
	total, err := s.upload(ctx, mu, first, cr)
	if err != nil {
		return fmt.Errorf("putting %s (%d bytes read): %w", key, total, err)
	}
	return nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// s3Multipart is one multipart upload in an S3Bucket.
type s3Multipart struct {
	b   *S3Bucket
	key string
	id  string
}

func (m *s3Multipart) uploadPart(ctx context.Context, n int32, body []byte) (string, error) {
	out, err := m.b.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        &m.b.bucket,
		Key:           &m.key,
		UploadId:      &m.id,
		PartNumber:    aws.Int32(n),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentMD5:    contentMD5(body),
	}, m.b.payloadOptions()...)
	if err != nil {
		return "", m.b.wrap("uploading part of", m.key, err)
	}
	return aws.ToString(out.ETag), nil
}

func (m *s3Multipart) complete(ctx context.Context, etags []string) error {
	parts := make([]types.CompletedPart, len(etags))
	for i, e := range etags {
		parts[i] = types.CompletedPart{ETag: aws.String(e), PartNumber: aws.Int32(int32(i + 1))}
	}
	_, err := m.b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &m.b.bucket,
		Key:             &m.key,
		UploadId:        &m.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return m.b.wrap("completing multipart upload of", m.key, err)
	}
	return nil
}

func (m *s3Multipart) abort(ctx context.Context) error {
	m.b.logger.DebugContext(ctx, "aborting multipart upload", "key", m.key)
	return m.b.AbortMultipartUpload(ctx, m.key, m.id)
}

// List implements Bucket with ListObjectsV2.
func (b *S3Bucket) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return b.ListAfter(ctx, prefix, "", fn)
}

// ListAfter implements RangeLister with ListObjectsV2's StartAfter.
func (b *S3Bucket) ListAfter(ctx context.Context, prefix, startAfter string, fn func(ObjectInfo) error) error {
	return b.ListPages(ctx, prefix, startAfter, func(p Page) error {
		for _, o := range p.Objects {
			if err := fn(o); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListPages implements PageLister: one ListObjectsV2 request a page.
func (b *S3Bucket) ListPages(ctx context.Context, prefix, startAfter string, fn func(Page) error) error {
	in := &s3.ListObjectsV2Input{
		Bucket:  &b.bucket,
		Prefix:  &prefix,
		MaxKeys: aws.Int32(int32(b.opts.ListPageSize)),
	}
	if startAfter != "" {
		in.StartAfter = &startAfter
	}
	p := s3.NewListObjectsV2Paginator(b.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return b.wrap("listing", prefix, err)
		}
		objs := make([]ObjectInfo, len(page.Contents))
		for i, o := range page.Contents {
			objs[i] = ObjectInfo{
				Key:          aws.ToString(o.Key),
				Size:         aws.ToInt64(o.Size),
				LastModified: aws.ToTime(o.LastModified),
				ETag:         strings.Trim(aws.ToString(o.ETag), `"`),
			}
		}
		if err := fn(Page{Objects: objs, More: p.HasMorePages()}); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Bucket with DeleteObjects, DeleteBatchSize keys per
// request, each carrying Content-MD5 (which S3 and Garage require).
func (b *S3Bucket) Delete(ctx context.Context, keys ...string) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), b.opts.DeleteBatchSize)]
		keys = keys[len(batch):]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i := range batch {
			ids[i] = types.ObjectIdentifier{Key: &batch[i]}
		}
		out, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &b.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}, s3.WithAPIOptions(addContentMD5))
		if err != nil {
			return b.wrap("deleting", batch[0], err)
		}
		// Deleting a key that is gone succeeds in S3; versitygw reports
		// NoSuchKey when another client deleted it meanwhile.
		errs := slices.DeleteFunc(out.Errors, func(e types.Error) bool { return aws.ToString(e.Code) == "NoSuchKey" })
		if len(errs) > 0 {
			e := errs[0]
			return b.remote(nil, nil, "deleting %s in bucket %q at %s: %s: %s (and %d more errors)",
				aws.ToString(e.Key), b.bucket, b.where, aws.ToString(e.Code), aws.ToString(e.Message), len(errs)-1)
		}
	}
	return nil
}

// addContentMD5 adds a Content-MD5 header computed from the serialized
// request body: the SDK sends only a CRC32 checksum for DeleteObjects,
// which some S3 servers refuse.
func addContentMD5(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("nixbucketContentMD5",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			req, ok := in.Request.(*smithyhttp.Request)
			if ok && req.GetStream() != nil && req.Header.Get("Content-MD5") == "" {
				body, err := io.ReadAll(req.GetStream())
				if err != nil {
					return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("reading request body: %w", err)
				}
				req.Header.Set("Content-MD5", *contentMD5(body))
				if in.Request, err = req.SetStream(bytes.NewReader(body)); err != nil {
					return middleware.BuildOutput{}, middleware.Metadata{}, err
				}
			}
			return next.HandleBuild(ctx, in)
		}), middleware.After)
}

// ListMultipartUploads implements Multiparter.
func (b *S3Bucket) ListMultipartUploads(ctx context.Context, prefix string, fn func(Upload) error) error {
	in := &s3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: &prefix, MaxUploads: aws.Int32(int32(b.opts.ListPageSize))}
	for {
		out, err := b.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return b.wrap("listing multipart uploads", prefix, err)
		}
		for _, u := range out.Uploads {
			err := fn(Upload{Key: aws.ToString(u.Key), UploadID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
			if err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		if aws.ToString(out.NextKeyMarker) == "" && aws.ToString(out.NextUploadIdMarker) == "" {
			return fmt.Errorf("listing multipart uploads %s: truncated listing without a next marker", prefix)
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// AbortMultipartUpload implements Multiparter.
func (b *S3Bucket) AbortMultipartUpload(ctx context.Context, key, uploadID string) error {
	_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &b.bucket, Key: &key, UploadId: &uploadID,
	})
	if err != nil {
		return b.wrap("aborting multipart upload of", key, err)
	}
	return nil
}

// ServerTime returns the server's clock, from the Date header of a
// HeadBucket response (whole seconds, truncated: at most a second behind).
// Object times (LastModified) come from this clock, so code comparing them
// with "now" (gc's grace, lock staleness) reads it rather than trusting
// the local clock.
func (b *S3Bucket) ServerTime(ctx context.Context) (time.Time, error) {
	out, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.bucket})
	if err != nil {
		werr := b.wrap("reading the clock of", b.bucket, err)
		if errors.Is(werr, ErrNotFound) { // a HEAD's 404 has no body to say more
			return time.Time{}, b.remote(ErrNoSuchBucket, err, "reading the clock of bucket %q: it does not exist at %s", b.bucket, b.where)
		}
		return time.Time{}, werr
	}
	raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
	if !ok || raw.Header.Get("Date") == "" {
		return time.Time{}, b.remote(nil, nil, "reading the clock of bucket %q at %s: no Date header in the response", b.bucket, b.where)
	}
	t, err := http.ParseTime(raw.Header.Get("Date"))
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the clock of bucket %q at %s: %w", b.bucket, b.where, err)
	}
	return t.UTC(), nil
}

// ServerName returns the Server header of the server's answer to a
// HeadBucket ("MinIO", "VERSITYGW", "AmazonS3", "Garage"…), "" when it
// sends none: for messages that concern one server's behaviour only.
func (b *S3Bucket) ServerName(ctx context.Context) (string, error) {
	out, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.bucket})
	if err != nil {
		return "", b.wrap("asking the server of", b.bucket, err)
	}
	raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
	if raw == nil {
		return "", nil
	}
	return raw.Header.Get("Server"), nil
}

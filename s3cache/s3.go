package s3cache

// S3Bucket: its options and construction. The s3*.go files, range.go and
// retry.go are the only files that import the AWS SDK.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
	"github.com/aws/smithy-go/logging"
)

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
	// scopeOK is set once the server took a request's signature scope
	// (s3scope.go).
	scopeOK atomic.Bool
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
	cert, err := loadClientCertificate(u)
	if err != nil {
		return nil, err
	}
	hc, err := httpClient(opts, cert)
	if err != nil {
		return nil, err
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
		o.HTTPClient = hc
		o.APIOptions = append(o.APIOptions, retryMiddleware{b}.add, scopeMiddleware{b}.add)
	})
	b.client = client
	b.pathStyle = pathStyle
	b.where = u.Endpoint
	if b.where == "" {
		b.where = "AWS region " + region
	}
	return b, nil
}

// httpClient returns opts.HTTPClient, or a new client, presenting cert
// (if not nil) in TLS handshakes, behind a stallTransport: a server that
// takes a request and never answers, or stops in a body, is retried
// instead of hanging; and behind a tlsTransport, so that a refused
// handshake says why.
func httpClient(opts S3Options, cert *tls.Certificate) (*http.Client, error) {
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		next := c.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		if cert != nil {
			t, ok := next.(*http.Transport)
			if !ok {
				return nil, errors.New("opening S3 bucket: a client certificate (tls-certificate=) needs an *http.Transport in S3Options.HTTPClient")
			}
			next = withClientCertificate(t, cert)
		}
		c.Transport = &tlsTransport{next: &stallTransport{next: next, timeout: opts.StallTimeout}, withCert: cert != nil}
		return &c, nil
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = opts.ConnectTimeout
	t.ForceAttemptHTTP2 = false
	t.MaxIdleConnsPerHost = 128 // parallel uploads and HEADs keep their connections
	t = withClientCertificate(t, cert)
	return &http.Client{Transport: &tlsTransport{next: &stallTransport{next: t, timeout: opts.StallTimeout}, withCert: cert != nil}}, nil
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

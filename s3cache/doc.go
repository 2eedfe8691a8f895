// Package s3cache keeps a Nix binary cache in a bucket.
//
// # Buckets
//
// Bucket is the one seam to object storage: Stat, Get, Put, List and
// Delete, with ctx first. Three implementations:
//
//   - S3Bucket (the s3*.go files, range.go and retry.go, the only files
//     that import aws-sdk-go-v2) for any S3 server: Garage, MinIO,
//     versitygw, AWS, R2, B2. Streams of unknown length are uploaded as
//     multipart uploads, parts in parallel with bounded buffers (part
//     size × parts in flight), each part retried on its own, the upload
//     aborted on any failure or cancellation.
//   - FileBucket for file:///DIR, laid out as Nix's local binary cache
//     (src/libstore/local-binary-cache-store.cc), atomic per object.
//   - MemBucket, in memory, for unit tests.
//
// Multiparter (unfinished multipart uploads, for garbage collection) and
// InfoGetter (metadata with the body) are optional extensions found by
// type assertion. The conformance suite in s3cachetest holds every
// implementation to the same contract, against real servers too.
//
// # Failing servers
//
// S3Options bound every wait: ConnectTimeout, StallTimeout (no byte moved
// either way, in a request or in a body a caller reads) and RetryFor (how
// long one request retries transient failures, with backoff and jitter; a
// WARN line before each retry). A GET body that breaks is resumed with a
// ranged GET. Every failure of the server or the network to it, after the
// retries, is a *RemoteError (one line naming the endpoint), the class the
// CLI maps to exit 5; the sentinels ErrAccessDenied, ErrNoSuchBucket and
// ErrUnreachable say which kind. A missing object is ErrNotFound.
//
// # Store URLs
//
// ParseURL reads Nix's store URLs (src/libstore/s3-binary-cache-store.hh,
// s3-url.cc, binary-cache-store.hh):
//
//	s3://BUCKET?endpoint=HOST[:PORT]|URL&region=R&scheme=http|https&profile=P&secret-key=FILE&compression=xz|zstd|none
//	file:///DIR?compression=…&secret-key=…
//
// endpoint may be a full URL or a bare HOST[:PORT] whose scheme comes from
// scheme= (default https). Custom endpoints use path-style addressing, as
// Garage needs; region defaults to us-east-1 (Garage's is usually
// "garage"). Credentials come from the AWS chain: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, the shared config and credentials files, and the
// profile= parameter. Requests send checksums only where an operation
// requires them, which Garage needs. Every parameter Nix knows is honoured,
// accepted where its value asks for what nixbucket does anyway, or refused
// with one line saying why (ParseURL has the list); unknown ones are an
// error that lists the valid ones.
//
// # TLS
//
// tls-certificate=FILE&tls-private-key=FILE give a client certificate
// (PEM) that the S3 client presents to an endpoint requiring mutual TLS.
// The server's certificate is verified against the system's roots, or
// the PEM bundle named by SSL_CERT_FILE (or the directories in
// SSL_CERT_DIR), as Go reads them: the way to trust a private CA or a
// self-signed endpoint. A handshake the server or the client refuses is
// not retried, and fails with one line saying which side refused and
// what to set.
//
// # Content-Encoding
//
// Get and GetWithInfo decode the narinfos, .ls listings and build logs
// that were stored with a Content-Encoding (gzip, xz, zstd or br), as Nix
// writes them with narinfo-compression, ls-compression and
// log-compression and niks3 writes its narinfos (zstd); a narinfo file
// of a file:// cache is recognised by its compression's magic number. A
// decoded object is held in memory and bounded (MaxDecodedNarInfo,
// MaxDecodedSize); NARs are never decoded. With narinfo-compression=zstd,
// br or gzip in an s3:// URL, Put writes narinfos compressed with that
// Content-Encoding, as Nix does.
package s3cache

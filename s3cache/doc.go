// Package s3cache keeps a Nix binary cache in a bucket.
//
// # Buckets
//
// Bucket is the one seam to object storage: Stat, Get, Put, List and
// Delete, with ctx first. Three implementations:
//
//   - S3Bucket (s3.go, the only file that imports aws-sdk-go-v2) for any
//     S3 server: Garage, MinIO, versitygw, AWS, R2, B2. Streams of unknown
//     length are uploaded as multipart uploads, parts in parallel with
//     bounded buffers (part size × parts in flight), each part retried on
//     its own, the upload aborted on any failure or cancellation.
//   - FileBucket for file:///DIR, laid out as Nix's local binary cache
//     (src/libstore/local-binary-cache-store.cc), atomic per object.
//   - MemBucket, in memory, for unit tests.
//
// Multiparter (unfinished multipart uploads, for garbage collection) and
// InfoGetter (metadata with the body) are optional extensions found by
// type assertion. The conformance suite in s3cachetest holds every
// implementation to the same contract, against real servers too.
//
// Errors that retrying cannot heal are classified with sentinels for the
// CLI's exit codes: ErrAccessDenied, ErrNoSuchBucket, ErrUnreachable; a
// missing object is ErrNotFound.
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
// requires them, which Garage needs. Parameters Nix knows but that change
// nothing here are accepted and listed in IgnoredParams; unknown ones are
// an error that lists the valid ones.
package s3cache

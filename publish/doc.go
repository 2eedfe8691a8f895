// Package publish puts release artifacts in a bucket, on the conventions of
// the seed's release pipeline (garage's shell.nix hooks to_s3 and
// refresh_index, and nix/build_index.nix):
//
//   - a static binary goes to <prefix><version>/<target triple>/<name>,
//     e.g. _releases/v0.8.0/x86_64-unknown-linux-musl/garage, with its
//     SHA-256 beside it as <name>.sha256 in sha256sum's format
//     ("<64 hex>  <name>\n"). PublishBinaries deletes the old checksums
//     first, uploads every binary, and writes the checksums last, so a
//     checksum always matches its binary; a failed upload leaves the files
//     before it published without checksums, until the command is re-run;
//   - the release index is built from one LIST of the prefix: objects are
//     grouped by version, versions are classified (Classify) as stable
//     ("v" and 3 or 4 dot-separated numbers), development (a 40-hex commit)
//     or extra (anything else), stable ones sorted by version number, newest
//     first, the others by date, newest first. It is written next to the
//     prefix as <prefix without its trailing slash>.json and .html (for
//     the default prefix "_releases/": _releases.json and _releases.html at
//     the bucket root, as the seed). The JSON keeps the seed's shape (a list
//     of categories Release, Extra, Development, each with its builds
//     grouped by version) and adds the class, checksum, platform names and
//     source links (SourceTemplate). The page is written before the JSON.
//
// Objects get a Content-Type and a Cache-Control (BinaryCacheControl,
// IndexCacheControl) on S3. A file:// bucket keeps neither: it stores bare
// files, and reports a Content-Type guessed from the key when read.
//
// Package publish/oci builds and pushes the container images.
package publish

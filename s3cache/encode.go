package s3cache

// Encode applies the content coding c (zstd, br or gzip) to data, as Put
// does for narinfos with narinfo-compression; push uses it for build logs
// with log-compression. The result is what a reader's Get decodes.
func Encode(c string, data []byte) ([]byte, error) { return encode(c, data) }

// Package signing implements Nix's binary cache signatures: ed25519 keys and
// signatures in Nix's text form, "<name>:<base64>" (src/libutil/signature/
// local-keys.cc, crypto.cc in Nix ≤ 2.19).
//
//   - A secret key is 64 bytes, the 32-byte seed followed by the 32-byte
//     public key (libsodium's crypto_sign_SECRETKEYBYTES layout, the same as
//     Go's ed25519.PrivateKey): 88 base64 characters. nix-store
//     --generate-binary-cache-key writes it without a trailing newline.
//   - A public key is 32 bytes, 44 base64 characters.
//   - A signature is a pure Ed25519 signature (crypto_sign_detached) of a
//     narinfo fingerprint, 64 bytes, written "<keyname>:<base64>".
//
// Parsing follows Nix: the name is the non-empty text before the first ':';
// the base64 decoder skips newlines and stops at the first '='. Key text is
// also trimmed of surrounding white space, so a key file ending in a newline
// (or CRLF) is accepted.
//
// Verification follows ValidPathInfo::checkSignatures: a signature counts
// only when a trusted key has its name; a signature whose name is unknown is
// ignored, one whose name is known but whose bytes are malformed is an error.
//
// A SecretKey never prints its secret: String, GoString, Format and LogValue
// show the key name only, errors from ParseSecretKey never quote the input,
// and the bytes are captured by a closure, out of reach of reflection, so that
// printing a struct holding a SecretKey in an unexported field (which fmt
// does field by field, ignoring methods) cannot show them either. Only
// Encode reveals the secret, for writing the key file (which the caller should create
// with mode 0600, as Nix does).
package signing

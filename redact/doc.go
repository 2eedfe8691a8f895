// Package redact removes secrets from text on its way to output: every
// error line, log record, --json document and the messages of programs
// nixbucket runs pass through it (a Writer in front of stdout and stderr, a
// Handler in front of a slog handler), so that no call site has to remember.
//
// It recognises three shapes of secret without being told anything:
//
//   - A Nix secret key, "<name>:<base64 of 64 bytes>" (88 characters with
//     "==", or 86 without): the seed followed by its ed25519 public key.
//     That is checked, not guessed: the 64 bytes count as a secret key only
//     when the second half is the public key of the first, so signatures
//     (the same shape) still print. The base64 part is found raw, URL-escaped
//     (%2B, %2F, %3D), with '+' decoded to ' ' as a URL query does, with one
//     "//" cleaned to "/" as in a path, with or without its name and
//     padding. The name stays: it is public.
//   - An AWS secret access key: 40 characters of base64 alphabet standing
//     alone, with upper case, lower case and digits, and not shaped like a
//     path; or such characters, without a '/' of their own, as a path
//     component. (AKIA… access key ids are 20 characters and stay.)
//   - The password in a URL's userinfo, "scheme://user:pass@host", which
//     becomes "scheme://user:xxxxx@host" as url.URL.Redacted writes it.
//
// The shapes are looked for in the text as it is and with its %XX escapes
// decoded. The AWS shape is a guess, and an AWS secret with a '/' of its
// own inside a path is not recognised by shape alone; what makes up for it
// is the Redactor: it also knows the secrets it is given (Secret: the key
// and AWS secret from the environment; SecretsIn: key-shaped text, AWS
// secrets and URL passwords in the arguments, even when not valid) and
// removes any run of 12 or more of their characters wherever it stands, so
// that a prefix, a suffix or a fragment echoed back by a parser is caught
// too.
package redact

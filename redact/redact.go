package redact

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"strings"
)

// Mask replaces a secret key, an AWS secret or a known secret.
const Mask = "(secret, not shown)"

// PasswordMask replaces the password of a URL's userinfo, as
// url.URL.Redacted writes it.
const PasswordMask = "xxxxx"

const (
	// keyBody is the length of the base64 of a 64-byte secret key without
	// its "==" padding.
	keyBody = 86
	// awsSecretLen is the length of an AWS secret access key.
	awsSecretLen = 40
	// fragment is the shortest run of a known secret's characters that is
	// removed: 12 base64 characters are 72 bits, never there by chance.
	fragment = 12
	// minSecret is the shortest secret a Redactor accepts: anything
	// shorter would hide ordinary words.
	minSecret = 8
)

// String returns s with every Nix secret key, AWS secret access key and URL
// password in it replaced (see the package comment).
func String(s string) string { return (*Redactor)(nil).String(s) }

// A Redactor redacts what String does and, besides, the secrets it was
// given. The zero value (and nil) knows no secret. Add secrets before use:
// String is safe for concurrent use, Secret and SecretsIn are not.
type Redactor struct {
	grams map[string]struct{}  // every fragment-long run of a secret
	heads [1 << 16 / 64]uint64 // a bit per hash of the grams' first 4 bytes: most positions need no map lookup
	short []string             // secrets shorter than fragment, matched whole
}

// New returns a Redactor that knows secrets (see Secret).
func New(secrets ...string) *Redactor {
	r := &Redactor{grams: map[string]struct{}{}}
	for _, s := range secrets {
		r.Secret(s)
	}
	return r
}

// Secret makes r remove secret, and every run of 12 or more of its
// characters, from what it redacts. Surrounding white space is ignored; of
// Nix key text "<name>:<base64>" only the base64 counts (the name is
// public); secrets shorter than 8 characters are ignored, since they would
// hide ordinary words. A ' ' counts as the '+' a URL query decodes it from.
func (r *Redactor) Secret(secret string) {
	secret = strings.TrimSpace(secret)
	if name, body, ok := strings.Cut(secret, ":"); ok && name != "" && !strings.ContainsAny(name, " \t\r\n") {
		secret = body
	}
	secret = plusForSpace(secret)
	if len(secret) < minSecret {
		return
	}
	if r.grams == nil {
		r.grams = map[string]struct{}{}
	}
	if len(secret) < fragment {
		r.short = append(r.short, secret)
		return
	}
	for i := 0; i+fragment <= len(secret); i++ {
		r.grams[secret[i:i+fragment]] = struct{}{}
		h := headHash([]byte(secret[i : i+4]))
		r.heads[h/64] |= 1 << (h % 64)
	}
}

// SecretsIn makes r remove (as Secret does) what looks like a secret in
// text, even when String would not recognise it there: a run of at least
// 86 base64 characters (the body of a Nix secret key, be it valid or not),
// raw or URL-escaped; an AWS secret access key; a URL's password. Give it
// the command line, so that a fragment of key text given in the wrong place
// and echoed back by a parser never shows.
func (r *Redactor) SecretsIn(text string) {
	for _, v := range views(text) {
		b := v.b
		for i := 0; i < len(b); {
			if !isB64(b[i]) {
				i++
				continue
			}
			j := i
			for j < len(b) && isB64(b[j]) {
				j++
			}
			if j-i >= keyBody || isAWSSecret(b[i:j]) {
				r.Secret(string(b[i:j]))
			}
			i = j
		}
		for _, sp := range passwords(b) {
			r.Secret(string(b[sp.a:sp.b]))
		}
	}
}

// String returns s with the secrets r knows, and those String finds,
// replaced.
func (r *Redactor) String(s string) string {
	if len(s) < minSecret {
		return s
	}
	var spans []span
	for _, v := range views(s) {
		var found []span
		found = append(found, secretKeys(v.b)...)
		found = append(found, awsSecrets(v.b)...)
		found = append(found, passwords(v.b)...)
		found = append(found, keyParams(v.b)...)
		if r != nil {
			found = append(found, r.known(v.b)...)
		}
		for _, sp := range found {
			spans = append(spans, span{v.off(sp.a), v.off(sp.b), sp.repl})
		}
	}
	if len(spans) == 0 {
		return s
	}
	spans = merge(spans)
	var out strings.Builder
	last := 0
	for _, sp := range spans {
		out.WriteString(s[last:sp.a])
		out.WriteString(sp.repl)
		last = sp.b
	}
	out.WriteString(s[last:])
	return out.String()
}

// A span is s[a:b], to be replaced by repl.
type span struct {
	a, b int
	repl string
}

// merge sorts spans and joins those that overlap (into Mask, unless they
// agree on the replacement).
func merge(spans []span) []span {
	slices.SortFunc(spans, func(x, y span) int { return x.a - y.a })
	out := spans[:1]
	for _, sp := range spans[1:] {
		cur := &out[len(out)-1]
		if sp.a >= cur.b {
			out = append(out, sp)
			continue
		}
		if sp.repl != cur.repl || sp.a != cur.a || sp.b != cur.b {
			cur.repl = Mask
		}
		cur.b = max(cur.b, sp.b)
	}
	return out
}

// A view is text to search: s itself, or s with its %XX escapes decoded.
type view struct {
	b      []byte
	starts []int // starts[i] is the offset in s of b[i]; nil: the same
	n      int   // len(s)
}

// off maps an offset in v.b to one in s.
func (v view) off(i int) int {
	if v.starts == nil {
		return i
	}
	if i == len(v.b) {
		return v.n
	}
	return v.starts[i]
}

// views returns s, and s with %XX decoded when it has any.
func views(s string) []view {
	vs := []view{{b: []byte(s), n: len(s)}}
	if !strings.Contains(s, "%") {
		return vs
	}
	d := view{b: make([]byte, 0, len(s)), starts: make([]int, 0, len(s)), n: len(s)}
	for i := 0; i < len(s); i++ {
		d.starts = append(d.starts, i)
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			d.b = append(d.b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		d.b = append(d.b, s[i])
	}
	if len(d.b) == len(s) {
		return vs
	}
	return append(vs, d)
}

// secretKeys finds the base64 of Nix secret keys: 86 characters (with ' '
// for '+') that decode to a seed and its public key. Candidates start at a
// run's start, at a ' ' or after a '/' or ' ' in it, or end at its end or
// before a '/' or ' '.
func secretKeys(b []byte) []span {
	var out []span
	for i := 0; i < len(b); {
		if !isB64(b[i]) && b[i] != ' ' {
			i++
			continue
		}
		j := i
		for j < len(b) && (isB64(b[j]) || b[j] == ' ') {
			j++
		}
		if j-i >= keyBody-1 {
			out = append(out, keysInRun(b, i, j)...)
		}
		i = j
	}
	return out
}

// keysInRun checks the candidate windows of the run b[i:j]: 86 characters,
// or 85 in which one "//" may have been cleaned to "/" (filepath.Clean of
// key text given as a path).
func keysInRun(b []byte, i, j int) []span {
	var out []span
	var buf [keyBody + 2]byte
	type window struct{ w, n int }
	var seen []window
	check := func(w, n int) {
		if w < i || w+n > j || strings.IndexByte("AQgw", b[w+n-1]) < 0 || slices.Contains(seen, window{w, n}) {
			return // the last 4 bits of a 64-byte key's base64 are zero
		}
		seen = append(seen, window{w, n})
		if n == keyBody && !isSecretKey(b[w:w+n], &buf) || n < keyBody && !isCleanedSecretKey(b[w:w+n], &buf) {
			return
		}
		end := w + n
		for k := 0; k < 2 && end < len(b) && b[end] == '='; k++ {
			end++
		}
		out = append(out, span{w, end, Mask})
	}
	for _, n := range []int{keyBody, keyBody - 1} {
		check(i, n)
		check(j-n, n)
		for k := i; k < j; k++ {
			switch b[k] {
			case ' ': // a word's start, or a '+' decoded to ' '
				check(k, n)
				fallthrough
			case '/':
				check(k+1, n)
				check(k-n, n)
			}
		}
	}
	return out
}

// isCleanedSecretKey reports whether w (85 characters) is the base64 of a
// secret key with one "//" written "/".
func isCleanedSecretKey(w []byte, buf *[keyBody + 2]byte) bool {
	var full [keyBody]byte
	for p, c := range w {
		if c != '/' {
			continue
		}
		copy(full[:], w[:p+1])
		copy(full[p+1:], w[p:])
		if isSecretKey(full[:], buf) {
			return true
		}
	}
	return false
}

// isSecretKey reports whether w (86 characters of base64, ' ' for '+')
// decodes to 64 bytes whose second half is the ed25519 public key of the
// first.
func isSecretKey(w []byte, buf *[keyBody + 2]byte) bool {
	for k, c := range w {
		if c == ' ' {
			c = '+'
		}
		buf[k] = c
	}
	buf[keyBody], buf[keyBody+1] = '=', '='
	var raw [66]byte
	n, err := base64.StdEncoding.Decode(raw[:], buf[:])
	if err != nil || n != 64 {
		return false
	}
	priv := ed25519.NewKeyFromSeed(raw[:32])
	return bytes.Equal(priv[32:], raw[32:64])
}

// awsSecrets finds 40 base64 characters shaped like an AWS secret access
// key, standing alone or as a path component (without a '/' of its own).
// A run followed by '=' is padded base64, a Nix public key, signature or
// SRI hash (AWS secrets are never padded): its '/'s do not make path
// components, or one key in about thirty would be masked.
func awsSecrets(b []byte) []span {
	var out []span
	for i := 0; i < len(b); {
		if !isB64(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && isB64(b[j]) {
			j++
		}
		if j < len(b) && b[j] == '=' {
			i = j
			continue
		}
		if isAWSSecret(b[i:j]) {
			out = append(out, span{i, j, Mask})
		} else if bytes.IndexByte(b[i:j], '/') >= 0 {
			// A path component.
			for _, c := range splitSlash(b, i, j) {
				if isAWSSecret(b[c[0]:c[1]]) {
					out = append(out, span{c[0], c[1], Mask})
				}
			}
		}
		i = j
	}
	return out
}

// splitSlash returns the bounds of the parts of b[i:j] between slashes.
func splitSlash(b []byte, i, j int) [][2]int {
	var out [][2]int
	for a := i; a <= j; {
		z := a
		for z < j && b[z] != '/' {
			z++
		}
		out = append(out, [2]int{a, z})
		a = z + 1
	}
	return out
}

// isAWSSecret reports whether run (a run of base64 characters) looks like
// an AWS secret access key: 40 characters with upper and lower case letters
// and digits (which hex digests and store path hashes lack), not a path
// (starting or ending with '/', or with a part of digits alone: /001/).
func isAWSSecret(run []byte) bool {
	if len(run) != awsSecretLen || run[0] == '/' || run[len(run)-1] == '/' {
		return false
	}
	for _, c := range splitSlash(run, 0, len(run)) {
		if digitsOnly(run[c[0]:c[1]]) {
			return false
		}
	}
	var upper, lower, digit bool
	for _, c := range run {
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z':
			lower = true
		case '0' <= c && c <= '9':
			digit = true
		}
	}
	return upper && lower && digit
}

// passwords finds the passwords of URLs' userinfo: in "scheme://user:pass@",
// "pass" (also in "scheme:/user:pass@", a URL through filepath.Clean).
func passwords(b []byte) []span {
	var out []span
	for i := 1; i+2 <= len(b); i++ {
		if b[i] != ':' || b[i+1] != '/' || !isSchemeEnd(b[i-1]) {
			continue
		}
		start := i + 2
		if start < len(b) && b[start] == '/' {
			start++
		}
		end := start
		for end < len(b) && !isUserinfoEnd(b[end]) {
			end++
		}
		if end == len(b) || b[end] != '@' {
			continue
		}
		colon := bytes.IndexByte(b[start:end], ':')
		if colon < 0 || start+colon+1 == end || string(b[start+colon+1:end]) == PasswordMask {
			continue
		}
		out = append(out, span{start + colon + 1, end, PasswordMask})
	}
	return out
}

// isSchemeEnd reports whether c may end a URL scheme.
func isSchemeEnd(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isUserinfoEnd(c byte) bool {
	return c <= ' ' || strings.IndexByte("/?#@\"'<>`\\", c) >= 0
}

// keyParams finds the values of secret-key= and secret-keys= parameters
// that look like key text rather than a file name: 43 base64 characters or
// more in a row (a 32-byte key), where a file name has hardly any.
func keyParams(b []byte) []span {
	var out []span
	for _, name := range []string{"secret-key=", "secret-keys="} {
		for i := 0; ; {
			k := bytes.Index(b[i:], []byte(name))
			if k < 0 {
				break
			}
			start := i + k + len(name)
			end := start
			for end < len(b) && b[end] != '&' && b[end] != '"' && b[end] != '\'' && b[end] > ' ' {
				end++
			}
			if longestRun(b[start:end]) >= 43 {
				out = append(out, span{start, end, Mask})
			}
			i = start
		}
	}
	return out
}

// longestRun is the length of the longest run of base64 characters in b.
func longestRun(b []byte) int {
	best, n := 0, 0
	for _, c := range b {
		if isB64(c) {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// known finds the secrets r knows: every run of 12 of their characters
// (and the short ones whole), widened to the run of base64 characters
// around it.
func (r *Redactor) known(b []byte) []span {
	if len(r.grams) == 0 && len(r.short) == 0 {
		return nil
	}
	m := b
	if bytes.IndexByte(b, ' ') >= 0 {
		m = []byte(plusForSpace(string(b)))
	}
	var out []span
	add := func(a, z int) {
		for a > 0 && isB64(b[a-1]) {
			a--
		}
		for z < len(b) && isB64(b[z]) {
			z++
		}
		for k := 0; k < 2 && z < len(b) && b[z] == '='; k++ {
			z++
		}
		out = append(out, span{a, z, Mask})
	}
	if len(r.grams) > 0 {
		for i := 0; i+fragment <= len(m); i++ {
			if h := headHash(m[i : i+4]); r.heads[h/64]&(1<<(h%64)) == 0 {
				continue
			}
			if _, ok := r.grams[string(m[i:i+fragment])]; ok {
				add(i, i+fragment)
			}
		}
	}
	for _, s := range r.short {
		for i := 0; ; {
			k := bytes.Index(m[i:], []byte(s))
			if k < 0 {
				break
			}
			add(i+k, i+k+len(s))
			i += k + 1
		}
	}
	return out
}

func digitsOnly(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// headHash hashes the first 4 bytes of b to 16 bits.
func headHash(b []byte) uint32 {
	return binary.LittleEndian.Uint32(b) * 2654435761 >> 16
}

func plusForSpace(s string) string { return strings.ReplaceAll(s, " ", "+") }

func isB64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

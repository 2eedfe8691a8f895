package serve

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Users are the accounts of an htpasswd file (`htpasswd -B`: one
// "user:$2y$…" line each, bcrypt only), for HTTP basic authentication.
// Checked passwords are remembered (as salted SHA-256 digests, in memory),
// so that a client fetching thousands of narinfos pays for bcrypt once.
type Users struct {
	hashes map[string][]byte

	salt [32]byte
	mu   sync.Mutex
	good map[[32]byte]bool // digests of user and password that bcrypt accepted
}

// bcrypts bounds the bcrypt comparisons running at once, so that clients
// trying passwords cannot take every core; remembered passwords skip it.
var bcrypts = make(chan struct{}, 2)

// maxRemembered bounds the digests Users keeps; it forgets them all when
// full.
const maxRemembered = 1024

// dummyHash is compared against for an unknown user, so that the answer
// takes as long as for a known one.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)
	if err != nil {
		panic(err)
	}
	return h
})

// LoadHtpasswd reads the htpasswd file at path (see ParseHtpasswd).
func LoadHtpasswd(path string) (*Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading htpasswd file: %w", err)
	}
	defer f.Close()
	u, err := ParseHtpasswd(f)
	if err != nil {
		return nil, fmt.Errorf("reading htpasswd file %s: %w", path, err)
	}
	return u, nil
}

// ParseHtpasswd parses htpasswd lines "user:hash"; blank lines and lines
// starting with # are skipped. Every hash must be bcrypt ($2y$, $2a$ or
// $2b$, as `htpasswd -B` writes): the other formats (MD5-crypt, SHA-1,
// crypt, plain) are too weak to put on the internet. Errors name the line,
// never its hash.
func ParseHtpasswd(r io.Reader) (*Users, error) {
	u := &Users{hashes: map[string][]byte{}, good: map[[32]byte]bool{}}
	if _, err := rand.Read(u.salt[:]); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("line %d: not user:hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil || !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("line %d: the hash of user %q is not bcrypt: make it with htpasswd -B", n, name)
		}
		if _, dup := u.hashes[name]; dup {
			return nil, fmt.Errorf("line %d: user %q again", n, name)
		}
		u.hashes[name] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(u.hashes) == 0 {
		return nil, fmt.Errorf("no users")
	}
	return u, nil
}

// Authenticate reports whether password is user's.
func (u *Users) Authenticate(user, password string) bool {
	h := sha256.New()
	h.Write(u.salt[:])
	fmt.Fprintf(h, "%d:%s:%s", len(user), user, password)
	var digest [32]byte
	h.Sum(digest[:0])
	u.mu.Lock()
	ok := u.good[digest]
	u.mu.Unlock()
	if ok {
		return true
	}
	hash, known := u.hashes[user]
	if !known {
		hash = dummyHash()
	}
	bcrypts <- struct{}{}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	<-bcrypts
	if err != nil || !known {
		return false
	}
	u.mu.Lock()
	if len(u.good) >= maxRemembered {
		clear(u.good)
	}
	u.good[digest] = true
	u.mu.Unlock()
	return true
}

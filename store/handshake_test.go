package store

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"testing"
)

// handshakeWith runs the client's side of the handshake against the
// daemon's bytes in, returning the connection and what the client sent.
func handshakeWith(in []byte) (*conn, []byte, error) {
	var out bytes.Buffer
	c := &conn{r: bufio.NewReader(bytes.NewReader(in)), w: bufio.NewWriter(&out)}
	err := c.handshake(slog.New(slog.NewTextHandler(io.Discard, nil)))
	return c, out.Bytes(), err
}

var handshakeCases = []struct {
	name    string
	in      []byte
	version uint64 // negotiated, when it succeeds
	nix     string
	err     error // nil, or an error to match with errors.Is (errAny: any)
}{
	{"Nix 2.8 (1.34)", stream(workerMagic2, 1<<8|34, "2.8.0", stderrLast), 1<<8 | 34, "2.8.0", nil},
	{"newer daemon (1.37): 1.35 is used", stream(workerMagic2, 1<<8|37, "2.18.1", 1, stderrLast), 1<<8 | 35, "2.18.1", nil},
	{"Nix 2.3 (1.21)", stream(workerMagic2, 1<<8|21, stderrLast), 1<<8 | 21, "", nil},
	{"log lines before the end", stream(workerMagic2, 1<<8|34, "2.8.0", stderrNext, "hello\n", stderrLast), 1<<8 | 34, "2.8.0", nil},
	{"not a daemon", stream(0x12345678, 1<<8|34), 0, "", errProtocol},
	{"too old (1.20)", stream(workerMagic2, 1<<8|20), 0, "", errAny},
	{"protocol 2.x", stream(workerMagic2, 2<<8), 0, "", errAny},
	{"an error instead", stream(workerMagic2, 1<<8|34, "2.8.0", stderrError, "Error", 0, "Error", "no", 0, 0), 0, "", errAny},
	{"version string too long", stream(workerMagic2, 1<<8|34, uint64(1)<<40), 0, "", errAny},
	{"truncated greeting", stream(workerMagic2)[:5], 0, "", io.ErrUnexpectedEOF},
	{"nothing", nil, 0, "", io.EOF},
}

// errAny matches any error in handshakeCases.
var errAny = errors.New("any error")

func TestHandshake(t *testing.T) {
	for _, tc := range handshakeCases {
		t.Run(tc.name, func(t *testing.T) {
			c, sent, err := handshakeWith(tc.in)
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("handshake: %v", err)
			case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
				t.Fatalf("handshake error = %v, want %v", err, tc.err)
			case err != nil:
				return
			}
			if c.version != tc.version || c.nixVersion != tc.nix {
				t.Errorf("version %#x, Nix %q; want %#x, %q", c.version, c.nixVersion, tc.version, tc.nix)
			}
			if want := stream(workerMagic1, clientVersion, 0, 0); !bytes.Equal(sent, want) {
				t.Errorf("client sent % x, want % x", sent, want)
			}
		})
	}
}

// FuzzHandshake feeds the handshake arbitrary daemon bytes: it must not
// panic, and a success means a supported, negotiated version.
func FuzzHandshake(f *testing.F) {
	for _, tc := range handshakeCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, sent, err := handshakeWith(in)
		if err != nil {
			return
		}
		if c.version>>8 != 1 || minor(c.version) < minDaemonMinor || c.version > clientVersion {
			t.Fatalf("accepted protocol version %#x", c.version)
		}
		if len(c.nixVersion) > maxPathLen {
			t.Fatalf("accepted a %d-byte Nix version", len(c.nixVersion))
		}
		if !bytes.HasPrefix(sent, stream(workerMagic1)) {
			t.Fatalf("client sent % x", sent)
		}
	})
}

package store

// Internal tests: the log-stream and reply decoders are unexported, and are
// fuzzed here on their own; the daemon_test.go tests drive them against the
// real nix-daemon.

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/wire"
)

// stream builds worker-protocol bytes from uint64s, strings and []strings.
func stream(items ...any) []byte {
	var b bytes.Buffer
	for _, it := range items {
		switch v := it.(type) {
		case int:
			_ = wire.WriteUint64(&b, uint64(v))
		case uint64:
			_ = wire.WriteUint64(&b, v)
		case string:
			_ = wire.WriteString(&b, v)
		case []string:
			_ = writeStrings(&b, v)
		default:
			panic(it)
		}
	}
	return b.Bytes()
}

const v134 = 1<<8 | 34

var stderrCases = []struct {
	name    string
	version uint64
	in      []byte
	want    error  // nil, a *DaemonError, or an error to match with errors.Is
	log     string // a line the log must contain
}{
	{"last", v134, stream(stderrLast), nil, ""},
	{"log and activities", v134, stream(
		stderrNext, "hello\n",
		stderrStartActivity, 7, 3, 109, "querying \x1b[35;1mpath\x1b[0m", 2, fieldInt, 42, fieldString, "s", 0,
		stderrResult, 7, 105, 1, fieldInt, 1,
		stderrStopActivity, 7,
		stderrLast), nil, "querying path"},
	{"error 1.26+", v134, stream(stderrError, "Error", 0, "Error", "\x1b[31;1merror:\x1b[0m path 'x' is not valid", 0,
		2, 0, "while doing a", 0, "while doing b"),
		&DaemonError{Message: "error: path 'x' is not valid", Traces: []string{"while doing a", "while doing b"}, Status: 1}, ""},
	{"error with a broken escape", v134, stream(stderrError, "Error", 0, "Error", "x\x1b[000\x7fy\x1b", 0, 0),
		&DaemonError{Message: "x\x7fy", Status: 1}, ""},
	{"error before 1.26", 1<<8 | 25, stream(stderrError, "it broke", 100), &DaemonError{Message: "it broke", Status: 100}, ""},
	{"error of another type", v134, stream(stderrError, "Panic", 0), errProtocol, ""},
	{"error with a position", v134, stream(stderrError, "Error", 0, "Error", "m", 1, 0), errProtocol, ""},
	{"data request", v134, stream(stderrRead, 10), errProtocol, ""},
	{"unknown message", v134, stream(0x1234), errProtocol, ""},
	{"bad field", v134, stream(stderrResult, 1, 2, 1, 9), errProtocol, ""},
	{"huge field list", v134, stream(stderrResult, 1, 2, uint64(1)<<40), errProtocol, ""},
	{"truncated", v134, stream(stderrNext, "hello")[:12], io.ErrUnexpectedEOF, ""},
	{"empty", v134, nil, io.EOF, ""},
}

func TestReadStderr(t *testing.T) {
	for _, tc := range stderrCases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			err := readStderr(bytes.NewReader(tc.in), tc.version, log)
			var de *DaemonError
			switch want := tc.want.(type) {
			case nil:
				if err != nil {
					t.Fatalf("readStderr: %v", err)
				}
			case *DaemonError:
				if !errors.As(err, &de) || !reflect.DeepEqual(de, want) {
					t.Fatalf("readStderr = %#v, want %#v", err, want)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("readStderr = %v, want %v", err, want)
				}
			}
			if !strings.Contains(logs.String(), tc.log) || strings.Contains(logs.String(), "\x1b") {
				t.Errorf("log %q does not contain %q without escapes", logs.String(), tc.log)
			}
		})
	}
}

func FuzzReadStderr(f *testing.F) {
	for _, tc := range stderrCases {
		f.Add(minor(tc.version), tc.in)
	}
	f.Fuzz(func(t *testing.T, minor uint64, in []byte) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		err := readStderr(bytes.NewReader(in), 1<<8|minor&0xff, log)
		var de *DaemonError
		if errors.As(err, &de) && strings.Contains(de.Message+strings.Join(de.Traces, ""), "\x1b") {
			t.Fatalf("escape left in %#v", de)
		}
	})
}

func TestReadPathInfo(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		in   []byte
		want *PathInfo
		ok   bool
	}{
		{"invalid", stream(0), nil, true},
		{"valid", stream(1, "/nix/store/d.drv", hex, []string{"/nix/store/a", "/nix/store/b"}, 1700000000, 1234, 1,
			[]string{"k:sig"}, "text:sha256:x"), &PathInfo{Path: "p", Deriver: "/nix/store/d.drv",
			References: []string{"/nix/store/a", "/nix/store/b"}, NarSize: 1234, Ultimate: true,
			Signatures: []string{"k:sig"}, CA: "text:sha256:x"}, true},
		{"bad flag", stream(2), nil, false},
		{"bad hash", stream(1, "", "sha256:zz", []string{}, 0, 0, 0, []string{}, ""), nil, false},
		{"truncated", stream(1, "", hex, []string{}, 0, 0), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readPathInfo(bytes.NewReader(tc.in), "p")
			if (err == nil) != tc.ok {
				t.Fatalf("readPathInfo: %v", err)
			}
			if got != nil {
				if got.NarHash == nil || got.RegistrationTime.Unix() != 1700000000 {
					t.Errorf("NarHash %v, RegistrationTime %v", got.NarHash, got.RegistrationTime)
				}
				got.NarHash, got.RegistrationTime = nil, tc.want.RegistrationTime
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("readPathInfo = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzReadPathInfo(f *testing.F) {
	f.Add(stream(1, "", strings.Repeat("0", 64), []string{"/nix/store/a"}, 1, 2, 0, []string{}, ""))
	f.Add(stream(0))
	f.Add(stream(1, "", strings.Repeat("0", 64), uint64(1)<<60))
	f.Fuzz(func(t *testing.T, in []byte) {
		info, err := readPathInfo(bytes.NewReader(in), "p")
		if err == nil && info != nil && info.NarHash == nil {
			t.Fatal("valid info without a NarHash")
		}
	})
}

func FuzzReadOutputMap(f *testing.F) {
	f.Add(stream(2, "dev", "/nix/store/x-dev", "out", ""))
	f.Add(stream(uint64(1) << 50))
	f.Fuzz(func(t *testing.T, in []byte) {
		outs := map[string]string{}
		if err := readOutputMap(bytes.NewReader(in), outs); err == nil {
			for k, v := range outs {
				if v == "" {
					t.Fatalf("output %q kept with no path", k)
				}
			}
		}
	})
}

package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/nix-community/go-nix/pkg/wire"
)

// Worker protocol constants (src/libstore/worker-protocol.hh).
const (
	workerMagic1 = 0x6e697863 // "cxin", sent by the client
	workerMagic2 = 0x6478696f // "oixd", sent by the daemon

	// clientVersion is the protocol version we speak: 1.35, the last one
	// before the feature-set exchange of 1.38 (and 1.36-37, which change
	// nothing we use).
	clientVersion = 1<<8 | 35
	// minDaemonMinor is the oldest daemon we accept (Nix 2.3 speaks 1.21).
	minDaemonMinor = 21

	stderrNext          = 0x6f6c6d67
	stderrRead          = 0x64617461
	stderrWrite         = 0x64617416
	stderrLast          = 0x616c7473
	stderrError         = 0x63787470
	stderrStartActivity = 0x53545254
	stderrStopActivity  = 0x53544f50
	stderrResult        = 0x52534c54

	opQueryPathInfo            = 26
	opQueryValidPaths          = 31
	opQueryDerivationOutputMap = 41

	fieldInt    = 0
	fieldString = 1
)

// Bounds on what we read from the daemon, so that a broken peer cannot make
// us allocate without limit.
const (
	maxPathLen = 4096    // a store path, signature or content address
	maxMsgLen  = 1 << 20 // a log line or error message
	maxListLen = 1 << 24 // entries in a list, set or map
)

func minor(v uint64) uint64 { return v & 0xff }

// DaemonError is an error the nix-daemon reported (STDERR_ERROR).
type DaemonError struct {
	// Message is the error text, without ANSI escapes.
	Message string
	// Traces are the trace lines (protocol ≥ 1.26), outermost first.
	Traces []string
	// Status is the exit status the daemon suggests (protocol < 1.26), or 1.
	Status uint64
}

// Error returns the daemon's message.
func (e *DaemonError) Error() string {
	return "nix-daemon: " + e.Message
}

// errProtocol marks a reply that does not follow the worker protocol.
var errProtocol = errors.New("worker protocol violation")

// stripANSI removes terminal escapes (hintfmt's highlighting) the way Nix's
// filterANSIEscapes does (src/libutil/util.cc): ESC [ parameters and an
// optional final byte, or ESC and one byte in @..._, or a lone ESC.
func stripANSI(s string) string {
	if !strings.Contains(s, "\x1b") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '\x1b' {
			b.WriteByte(s[i])
			i++
			continue
		}
		i++
		switch {
		case i < len(s) && s[i] == '[':
			i++
			for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
				i++
			}
			if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
				i++
			}
		case i < len(s) && s[i] >= 0x40 && s[i] <= 0x5f:
			i++
		}
	}
	return b.String()
}

// readStderr consumes the daemon's log stream up to STDERR_LAST (nil) or
// STDERR_ERROR (a *DaemonError), logging what it carries at debug level
// (src/libstore/remote-store.cc, processStderr).
func readStderr(r io.Reader, version uint64, log *slog.Logger) error {
	for {
		msg, err := wire.ReadUint64(r)
		if err != nil {
			return err
		}
		switch msg {
		case stderrLast:
			return nil
		case stderrError:
			de, err := readError(r, version)
			if err != nil {
				return err
			}
			return de
		case stderrNext:
			s, err := wire.ReadString(r, maxMsgLen)
			if err != nil {
				return err
			}
			log.Debug("nix-daemon: "+stripANSI(strings.TrimRight(s, "\n")), "source", "daemon")
		case stderrStartActivity:
			var id, level, typ, parent uint64
			var text string
			if err := readUints(r, &id, &level, &typ); err != nil {
				return err
			}
			if text, err = wire.ReadString(r, maxMsgLen); err != nil {
				return err
			}
			if err := skipFields(r); err != nil {
				return err
			}
			if err := readUints(r, &parent); err != nil {
				return err
			}
			if text != "" {
				log.Debug("nix-daemon: "+stripANSI(text), "source", "daemon", "activity", id)
			}
		case stderrStopActivity:
			if _, err := wire.ReadUint64(r); err != nil {
				return err
			}
		case stderrResult:
			var id, typ uint64
			if err := readUints(r, &id, &typ); err != nil {
				return err
			}
			if err := skipFields(r); err != nil {
				return err
			}
		case stderrRead, stderrWrite:
			return fmt.Errorf("%w: unexpected data request %#x", errProtocol, msg)
		default:
			return fmt.Errorf("%w: unknown log message %#x", errProtocol, msg)
		}
	}
}

// readError reads the body of STDERR_ERROR: before 1.26 a message and an
// exit status; from 1.26 on a serialised nix::Error (type "Error", level,
// name, message, havePos, traces of (havePos, hint)).
func readError(r io.Reader, version uint64) (*DaemonError, error) {
	if minor(version) < 26 {
		msg, err := wire.ReadString(r, maxMsgLen)
		if err != nil {
			return nil, err
		}
		status, err := wire.ReadUint64(r)
		if err != nil {
			return nil, err
		}
		return &DaemonError{Message: stripANSI(msg), Status: status}, nil
	}
	typ, err := wire.ReadString(r, maxPathLen)
	if err != nil {
		return nil, err
	}
	if typ != "Error" {
		return nil, fmt.Errorf("%w: error of type %q", errProtocol, typ)
	}
	var level, havePos, n uint64
	if err := readUints(r, &level); err != nil {
		return nil, err
	}
	if _, err := wire.ReadString(r, maxPathLen); err != nil { // name, obsolete
		return nil, err
	}
	msg, err := wire.ReadString(r, maxMsgLen)
	if err != nil {
		return nil, err
	}
	if err := readUints(r, &havePos, &n); err != nil {
		return nil, err
	}
	if havePos != 0 {
		return nil, fmt.Errorf("%w: error with a position", errProtocol)
	}
	if n > maxListLen {
		return nil, fmt.Errorf("%w: %d traces", errProtocol, n)
	}
	de := &DaemonError{Message: stripANSI(msg), Status: 1}
	for range n {
		if err := readUints(r, &havePos); err != nil {
			return nil, err
		}
		if havePos != 0 {
			return nil, fmt.Errorf("%w: trace with a position", errProtocol)
		}
		hint, err := wire.ReadString(r, maxMsgLen)
		if err != nil {
			return nil, err
		}
		de.Traces = append(de.Traces, stripANSI(hint))
	}
	return de, nil
}

// skipFields reads and drops a list of activity/result fields.
func skipFields(r io.Reader) error {
	n, err := wire.ReadUint64(r)
	if err != nil {
		return err
	}
	if n > maxListLen {
		return fmt.Errorf("%w: %d fields", errProtocol, n)
	}
	for range n {
		typ, err := wire.ReadUint64(r)
		if err != nil {
			return err
		}
		switch typ {
		case fieldInt:
			_, err = wire.ReadUint64(r)
		case fieldString:
			_, err = wire.ReadString(r, maxMsgLen)
		default:
			err = fmt.Errorf("%w: field of type %d", errProtocol, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func readUints(r io.Reader, vs ...*uint64) error {
	for _, v := range vs {
		var err error
		if *v, err = wire.ReadUint64(r); err != nil {
			return err
		}
	}
	return nil
}

// readStrings reads a list or set of strings of at most maxLen bytes each.
func readStrings(r io.Reader, maxLen uint64) ([]string, error) {
	n, err := wire.ReadUint64(r)
	if err != nil {
		return nil, err
	}
	if n > maxListLen {
		return nil, fmt.Errorf("%w: list of %d strings", errProtocol, n)
	}
	ss := make([]string, 0, min(n, 1024))
	for range n {
		s, err := wire.ReadString(r, maxLen)
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	return ss, nil
}

func writeStrings(w io.Writer, ss []string) error {
	if err := wire.WriteUint64(w, uint64(len(ss))); err != nil {
		return err
	}
	for _, s := range ss {
		if err := wire.WriteString(w, s); err != nil {
			return err
		}
	}
	return nil
}

// readPathInfo reads the reply of QueryPathInfo after STDERR_LAST: (≥ 1.17)
// a validity flag, then UnkeyedValidPathInfo. It returns nil, nil for an
// invalid path.
func readPathInfo(r io.Reader, path string) (*PathInfo, error) {
	valid, err := wire.ReadUint64(r)
	if err != nil {
		return nil, err
	}
	switch valid {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("%w: validity flag %d", errProtocol, valid)
	}
	info := &PathInfo{Path: path}
	if info.Deriver, err = wire.ReadString(r, maxPathLen); err != nil {
		return nil, err
	}
	hash, err := wire.ReadString(r, maxPathLen)
	if err != nil {
		return nil, err
	}
	if info.NarHash, err = parseNarHash(hash); err != nil {
		return nil, err
	}
	if info.References, err = readStrings(r, maxPathLen); err != nil {
		return nil, err
	}
	var regTime, ultimate uint64
	if err := readUints(r, &regTime, &info.NarSize, &ultimate); err != nil {
		return nil, err
	}
	info.RegistrationTime = time.Unix(int64(regTime), 0)
	info.Ultimate = ultimate != 0
	if info.Signatures, err = readStrings(r, maxPathLen); err != nil {
		return nil, err
	}
	if len(info.Signatures) == 0 {
		info.Signatures = nil
	}
	if len(info.References) == 0 {
		info.References = nil
	}
	if info.CA, err = wire.ReadString(r, maxPathLen); err != nil {
		return nil, err
	}
	return info, nil
}

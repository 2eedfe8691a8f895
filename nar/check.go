package nar

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInvalid is returned (wrapped) by Check for a stream that is not a NAR
// Nix would accept.
var ErrInvalid = errors.New("invalid NAR")

// maxTag bounds the length of a NAR keyword, as Nix's parser does (narMaxTag).
const maxTag = 32

// Check reads one NAR from r, to the end of r, and returns nil if it is one
// that Nix's parser (parseDump in src/libutil/archive.cc) accepts: the magic,
// well-formed nodes, zero padding, an "executable" marker with an empty
// value before "contents", entry names that are valid (not empty, ".", "..",
// no "/" or NUL, at most MaxNameLen bytes) and strictly increasing in byte
// order, symlink targets that are not empty, hold no NUL and are at most
// MaxTargetLen bytes, and no node at depth MaxDepth. Unlike Nix, which
// ignores what follows a NAR, Check also refuses trailing bytes.
//
// Errors that are about the format wrap ErrInvalid and give the byte offset;
// errors from r are returned wrapped as they are. Memory is bounded: file
// contents are read through a small buffer and discarded.
func Check(r io.Reader) error {
	c := checker{r: bufio.NewReaderSize(r, 32<<10)}
	if err := c.check(); err != nil {
		return fmt.Errorf("checking NAR: %w", err)
	}
	return nil
}

type checker struct {
	r   *bufio.Reader
	off int64 // bytes consumed
	buf [MaxTargetLen + 1 + 8]byte
}

// formatError is a violation of the format at a byte offset.
type formatError struct {
	off int64
	msg string
}

func (e *formatError) Error() string { return fmt.Sprintf("at byte %d: %s", e.off, e.msg) }
func (e *formatError) Unwrap() error { return ErrInvalid }

func (c *checker) fail(format string, args ...any) error {
	return &formatError{c.off, fmt.Sprintf(format, args...)}
}

func (c *checker) check() error {
	s, err := c.str(len(magic))
	if fe := (*formatError)(nil); err != nil && !errors.As(err, &fe) {
		return err
	}
	if err != nil || s != magic {
		return c.fail("input doesn't look like a Nix archive")
	}
	if err := c.node(0); err != nil {
		return err
	}
	switch _, err := c.r.ReadByte(); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return err
	default:
		return c.fail("trailing data after the NAR")
	}
}

// full reads exactly len(p) bytes; a short stream is a format error.
func (c *checker) full(p []byte) error {
	n, err := io.ReadFull(c.r, p)
	c.off += int64(n)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return c.fail("unexpected end of NAR")
	}
	return err
}

func (c *checker) u64() (uint64, error) {
	if err := c.full(c.buf[:8]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(c.buf[:8]), nil
}

// pad reads and checks the padding after n bytes of a string.
func (c *checker) pad(n uint64) error {
	p := c.buf[:padding(n)]
	if err := c.full(p); err != nil {
		return err
	}
	for _, b := range p {
		if b != 0 {
			return c.fail("non-zero padding")
		}
	}
	return nil
}

// str reads a string of at most max bytes.
func (c *checker) str(max int) (string, error) {
	n, err := c.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(max) {
		return "", c.fail("string of %d bytes where at most %d are allowed", n, max)
	}
	p := c.buf[:n]
	if err := c.full(p); err != nil {
		return "", err
	}
	s := string(p)
	return s, c.pad(n)
}

func (c *checker) tag() (string, error) { return c.str(maxTag) }

func (c *checker) expect(want string) error {
	got, err := c.tag()
	if err != nil {
		return err
	}
	if got != want {
		return c.fail("expected tag %q, got %q", want, got)
	}
	return nil
}

// contents skips a file's contents and checks their padding.
func (c *checker) contents() error {
	n, err := c.u64()
	if err != nil {
		return err
	}
	for left := n; left > 0; {
		skipped, err := c.r.Discard(int(min(left, 1<<30)))
		c.off += int64(skipped)
		left -= uint64(skipped)
		if errors.Is(err, io.EOF) {
			return c.fail("unexpected end of NAR in file contents of %d bytes", n)
		}
		if err != nil {
			return err
		}
	}
	return c.pad(n)
}

func (c *checker) node(depth int) error {
	if depth >= MaxDepth {
		return c.fail("NAR directory nesting exceeds maximum depth of %d", MaxDepth)
	}
	if err := c.expect("("); err != nil {
		return err
	}
	if err := c.expect("type"); err != nil {
		return err
	}
	typ, err := c.tag()
	if err != nil {
		return err
	}
	switch typ {
	case "regular":
		tag, err := c.tag()
		if err != nil {
			return err
		}
		if tag == "executable" {
			if _, err := c.str(0); err != nil {
				return err
			}
			if tag, err = c.tag(); err != nil {
				return err
			}
		}
		if tag != "contents" {
			return c.fail("expected tag %q, got %q", "contents", tag)
		}
		if err := c.contents(); err != nil {
			return err
		}
	case "symlink":
		if err := c.expect("target"); err != nil {
			return err
		}
		target, err := c.str(MaxTargetLen)
		if err != nil {
			return err
		}
		if target == "" || strings.IndexByte(target, 0) >= 0 {
			return c.fail("invalid symlink target %q", target)
		}
	case "directory":
		prev := ""
		for {
			tag, err := c.tag()
			if err != nil {
				return err
			}
			if tag == ")" {
				return nil
			}
			if tag != "entry" {
				return c.fail("expected tag %q or %q, got %q", "entry", ")", tag)
			}
			if err := c.expect("("); err != nil {
				return err
			}
			if err := c.expect("name"); err != nil {
				return err
			}
			name, err := c.str(MaxNameLen)
			if err != nil {
				return err
			}
			if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
				return c.fail("invalid file name %q", name)
			}
			if name <= prev {
				return c.fail("directory is not sorted: %q after %q", name, prev)
			}
			prev = name
			if err := c.expect("node"); err != nil {
				return err
			}
			if err := c.node(depth + 1); err != nil {
				return err
			}
			if err := c.expect(")"); err != nil {
				return err
			}
		}
	default:
		return c.fail("unknown file type %q", typ)
	}
	return c.expect(")")
}

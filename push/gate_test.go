package push

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// TestGatedReader: a gatedReader passes at most free bytes, and never the
// end of its stream, before its gate opens; then everything, unchanged.
func TestGatedReader(t *testing.T) {
	errGate := errors.New("lock failed")
	for _, tc := range []struct {
		name       string
		size, free int
		gateErr    error
	}{
		{"longer than free", 10_000, 3000, nil},
		{"shorter than free: the end waits", 100, 3000, nil},
		{"exactly free", 3000, 3000, nil},
		{"empty", 0, 3000, nil},
		{"the gate fails", 10_000, 3000, errGate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("nar!"), tc.size/4+1)[:tc.size]
			var got []byte
			opened, beforeOpen := false, 0
			g := &gatedReader{ctx: t.Context(), r: bytes.NewReader(data), free: int64(tc.free), open: func(context.Context) error {
				opened, beforeOpen = true, len(got)
				return tc.gateErr
			}}
			buf := make([]byte, 700)
			var err error
			for {
				var n int
				n, err = g.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			if !opened {
				t.Fatal("the stream ended before the gate opened")
			}
			if beforeOpen > tc.free {
				t.Errorf("%d bytes passed before the gate opened, want at most %d", beforeOpen, tc.free)
			}
			if tc.gateErr != nil {
				if !errors.Is(err, tc.gateErr) || !errors.Is(g.err, tc.gateErr) {
					t.Errorf("read error %v (recorded %v), want the gate's %v", err, g.err, tc.gateErr)
				}
				return
			}
			if !errors.Is(err, io.EOF) || !bytes.Equal(got, data) {
				t.Errorf("read %d bytes (err %v), want the %d bytes of the stream and EOF", len(got), err, len(data))
			}
		})
	}
}

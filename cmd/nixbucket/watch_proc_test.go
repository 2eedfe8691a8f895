package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// watchProc is a `nixbucket watch` running in the background, its output
// collected as it comes.
type watchProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder // stdout and stderr, as lines arrive
	change chan struct{}   // closed (and replaced) at each line and at exit
	exited bool
	code   int
}

// watchDeadline bounds every wait on a background watch: a guard against
// a hang, not a measure.
const watchDeadline = 60 * time.Second

// startWatch starts the binary with args in runIn's environment; it is
// killed when the test ends.
func startWatch(t *testing.T, env []string, args ...string) *watchProc {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: needs the nixbucket binary")
	}
	p := &watchProc{cmd: exec.Command(cliBin, args...), change: make(chan struct{})}
	p.cmd.Env = cliEnv(t, env)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				p.mu.Lock()
				p.out.WriteString(sc.Text() + "\n")
				p.notify()
				p.mu.Unlock()
			}
		}()
	}
	go func() {
		readers.Wait()
		err := p.cmd.Wait()
		var ee *exec.ExitError
		p.mu.Lock()
		defer p.mu.Unlock()
		p.exited = true
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
			if ee.ExitCode() < 0 {
				p.code = -1 // killed by a signal
			}
		}
		p.notify()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		p.wait(t)
	})
	return p
}

func (p *watchProc) notify() {
	close(p.change)
	p.change = make(chan struct{})
}

// output is what the process printed so far.
func (p *watchProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the output matches re n times, and returns the
// output; it fails the test if the process exits first.
func (p *watchProc) waitFor(t *testing.T, re *regexp.Regexp, n int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), watchDeadline)
	defer cancel()
	for {
		p.mu.Lock()
		out, exited, change := p.out.String(), p.exited, p.change
		p.mu.Unlock()
		if len(re.FindAllString(out, -1)) >= n {
			return out
		}
		if exited {
			t.Fatalf("watch exited before printing %q (%d times):\n%s", re, n, out)
		}
		select {
		case <-change:
		case <-ctx.Done():
			t.Fatalf("watch printed no %q (%d times) in %v:\n%s", re, n, watchDeadline, out)
		}
	}
}

// wait waits for the process to exit and returns its exit code (-1 if a
// signal killed it).
func (p *watchProc) wait(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), watchDeadline)
	defer cancel()
	for {
		p.mu.Lock()
		exited, code, change := p.exited, p.code, p.change
		p.mu.Unlock()
		if exited {
			return code
		}
		select {
		case <-change:
		case <-ctx.Done():
			t.Fatalf("watch did not exit in %v:\n%s", watchDeadline, p.output())
		}
	}
}

// signal sends sig to the process.
func (p *watchProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// watchMetricsLine is the URL watch said it serves its metrics at.
var watchMetricsLine = regexp.MustCompile(`(?m)^metrics on (http://\S+/metrics)$`)

// watchStarted is the line watch logs once it watches the queue.
var watchStarted = regexp.MustCompile(`msg="watching the queue"`)

// watchBatchPushed is the line of a batch pushed.
var watchBatchPushed = regexp.MustCompile(`msg="batch pushed"`)

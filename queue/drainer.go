package queue

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrDrainerRunning is returned by LockDrainer while another process drains
// the queue.
var ErrDrainerRunning = errors.New("another watch is draining this queue")

// LockDrainer makes this process the queue's only drainer, for as long as it
// lives or until unlock: an flock on the queue file's ".drainer" sidecar,
// which the kernel releases when the process dies, even by kill -9.
func (q *Queue) LockDrainer() (unlock func(), err error) {
	name := q.path + ".drainer"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", q.path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(name)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if pid := strings.TrimSpace(string(owner)); pid != "" {
				return nil, fmt.Errorf("queue %s: %w (pid %s)", q.path, ErrDrainerRunning, pid)
			}
			return nil, fmt.Errorf("queue %s: %w", q.path, ErrDrainerRunning)
		}
		return nil, fmt.Errorf("queue %s: locking: %w", q.path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

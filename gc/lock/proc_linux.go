package lock

import (
	"errors"
	"os"
	"strings"
	"syscall"
)

// processSpace names the kernel boot and PID namespace this process runs
// in: two lock holders with the same one can see each other's processes.
// It is "" when unknown.
func processSpace() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "/" + ns
}

// processGone reports whether no process pid exists (in our PID
// namespace). A process of another user, or a zombie, still exists.
func processGone(pid int) bool {
	return pid > 0 && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

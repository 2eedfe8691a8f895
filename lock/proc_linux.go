package lock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
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

// holderGone reports whether the process pid, started start clock ticks
// after boot, is gone: no process has that PID, or the one that has it
// started at another time (the PID was reused). When the start time of
// a live PID cannot be read, the holder is taken for alive.
func holderGone(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if processGone(pid) {
		return true
	}
	got, err := processStart(pid)
	if err != nil {
		return errors.Is(err, os.ErrNotExist) // it exited meanwhile
	}
	return got != start
}

// selfStart is this process's start time (see processStart), 0 when
// unknown.
func selfStart() uint64 {
	start, _ := processStart(os.Getpid())
	return start
}

// processStart reads when process pid started, in clock ticks after boot:
// field 22 (starttime) of /proc/PID/stat (proc(5)).
func processStart(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Field 2, the command, is in parentheses and may hold any byte: the
	// fields after it follow the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: no command field", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	const starttime = 22 - 3 // fields[0] is field 3
	if len(fields) <= starttime {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	start, err := strconv.ParseUint(fields[starttime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return start, nil
}

//go:build bench

package bench

import (
	"os"
	osexec "os/exec"
	"strings"
	"testing"
)

// timedCmd prepares name with args under /usr/bin/time, which writes the
// child's own peak RSS (KiB), user and system seconds to res.
func timedCmd(t *testing.T, env []string, res, name string, args ...string) *osexec.Cmd {
	t.Helper()
	cmd := osexec.Command("/usr/bin/time", append([]string{"-f", "%M %U %S", "-o", res, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = new(strings.Builder), new(strings.Builder)
	return cmd
}

// execOut runs a command and returns its combined output.
func execOut(env []string, name string, args ...string) (string, error) {
	cmd := osexec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

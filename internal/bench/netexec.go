//go:build bench

package bench

import (
	"os"
	osexec "os/exec"
)

// execOut runs a command and returns its combined output.
func execOut(env []string, name string, args ...string) (string, error) {
	cmd := osexec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

package ocitest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CredHelper installs a docker credential helper named
// docker-credential-NAME in a directory of the test's own, put first on
// PATH for the rest of the test: for the server URL r.Host (read on stdin
// by its "get" command, as the docker-credential-helpers protocol has it)
// it answers user and password; for any other it answers "credentials not
// found". It returns a file to which each get appends the server URL it
// was asked for.
func (r *Registry) CredHelper(t testing.TB, name, user, password string) (calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	script := fmt.Sprintf(`#!/bin/sh
# docker-credential-%[1]s: a credential helper for one test registry.
[ "$1" = get ] || { echo "unsupported: $1" >&2; exit 1; }
read -r server
printf '%%s\n' "$server" >> %[2]s
if [ "$server" != %[3]s ]; then
	echo "credentials not found in native keychain"
	exit 1
fi
printf '{"ServerURL":"%%s","Username":"%%s","Secret":"%%s"}\n' "$server" %[4]s %[5]s
`, name, shellQuote(calls), shellQuote(r.Host), shellQuote(user), shellQuote(password))
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return calls
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestUsageListsEveryFlag walks every command and checks that its USAGE
// synopsis (UsageText up to its first blank line) names every flag its
// OPTIONS show (but --help, which every command has), by its name or an
// alias, so that the synopsis never hides an option.
func TestUsageListsEveryFlag(t *testing.T) {
	for _, lc := range leafCommands([]string{"nixbucket"}, commands()) {
		name := strings.Join(lc.path, " ")
		flags := visibleFlags(lc.cmd)
		if len(flags) == 0 {
			continue
		}
		usage, _, _ := strings.Cut(lc.cmd.UsageText, "\n\n")
		if usage == "" {
			t.Errorf("%s has flags but no USAGE line (UsageText)", name)
			continue
		}
		for _, f := range flags {
			if !usageNames(usage, f.Names()) {
				t.Errorf("%s: USAGE %q does not name --%s", name, usage, f.Names()[0])
			}
		}
	}
}

// visibleFlags are the flags a command's help shows.
func visibleFlags(c *cli.Command) []cli.Flag {
	var out []cli.Flag
	for _, f := range c.Flags {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		out = append(out, f)
	}
	return out
}

// usageNames reports whether usage has one of names as a flag: --name or
// -n, not followed by a letter, digit or '-'.
func usageNames(usage string, names []string) bool {
	for _, n := range names {
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		if regexp.MustCompile(`(^|[\s\[(|])` + regexp.QuoteMeta(dash+n) + `($|[^A-Za-z0-9-])`).MatchString(usage) {
			return true
		}
	}
	return false
}

// TestPushHelp runs push --help and push with an installable: the help
// has an example, the flags' value names and what PATH may be; an
// installable is refused (exit 3, nothing asked of any bucket) with the
// nix build command that makes a path of it.
func TestPushHelp(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runBin(t, nil, "push", "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("push --help: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"Example:\n      nixbucket push --cache 's3://",
		"--jobs N, -j N ", "--compression xz|zstd|none ", "--lock-wait DURATION ", "--progress-interval DURATION ",
		"PATH is a store path", "./result", "nix build nixpkgs#hello",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("push --help has no %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, " value ") {
		t.Errorf("push --help names a flag's value \"value\":\n%s", stdout)
	}

	for _, arg := range []string{"nixpkgs#hello", ".#default", "github:NixOS/nixpkgs/nixos-unstable#hello"} {
		// The cache is unreachable: a request to it would fail otherwise.
		code, _, stderr := runBin(t, nil, "push", "--cache", "s3://b?endpoint=http://"+closedPort(t)+"&region=garage", arg)
		oneErrorLine(t, stderr)
		if want := "build it first (nix build '" + arg + "')"; code != exitNotFound || !strings.Contains(stderr, want) {
			t.Errorf("push %s: exit %d, %q; want exit %d and %q", arg, code, stderr, exitNotFound, want)
		}
	}
}

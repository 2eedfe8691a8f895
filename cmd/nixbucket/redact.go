package main

import (
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/redact"
)

// secretEnv names the variables that hold secrets whatever their shape.
var secretEnv = []string{"NIXBUCKET_SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", pushTokenEnv}

// newRedactor returns the Redactor for everything the CLI prints: it knows
// the secrets of the environment, and whatever looks like one in args or
// in any other variable (key text, an AWS secret, a URL's password), so that
// a fragment a parser echoes back is removed too.
func newRedactor(args []string) *redact.Redactor {
	r := redact.New()
	for _, name := range secretEnv {
		// NIXBUCKET_SECRET_KEY may hold several keys, one per line: each
		// is a secret of its own (its name is not part of it).
		for _, line := range strings.Split(os.Getenv(name), "\n") {
			r.Secret(line)
		}
	}
	for _, kv := range os.Environ() {
		r.SecretsIn(kv)
	}
	for _, a := range args {
		r.SecretsIn(a)
	}
	return r
}

// redactorKey holds the app's Redactor in cli.App.Metadata.
const redactorKey = "redactor"

// redactString cleans s of secrets as everything the CLI prints is, for text
// that leaves the process another way (a file another command shows).
func redactString(c *cli.Context, s string) string {
	if r, ok := c.App.Metadata[redactorKey].(*redact.Redactor); ok {
		return r.String(s)
	}
	return redact.String(s)
}

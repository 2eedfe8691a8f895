package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nixbucket/nixbucket/s3cache"
)

// defaultAbortDays is init's --abort-multipart-days: a push never resumes
// an upload across runs, and gc's default grace (24h, "longer than any
// push") already takes an upload a day old for abandoned; S3 rounds the
// rule up to the next midnight UTC, so an upload gets 24 to 48 hours.
const defaultAbortDays = 1

// abortMultipartRule makes sure the bucket's lifecycle aborts incomplete
// multipart uploads after days, and returns the line that says what was
// done. A server that does not implement lifecycle, or refuses the rule,
// is not an error: the line says so, and that gc aborts old uploads.
func abortMultipartRule(ctx context.Context, l s3cache.Lifecycler, days int) (string, error) {
	rule, err := l.EnsureAbortMultipartRule(ctx, days)
	var le *s3cache.LifecycleError
	switch {
	case errors.As(err, &le) && errors.Is(err, s3cache.ErrLifecycleNotSupported):
		return fmt.Sprintf("the server does not support bucket lifecycle (%s): skipped; run gc to abort old uploads", le.Code), nil
	case le != nil:
		why := le.Code
		if le.Message != "" {
			why += ": " + strings.TrimSuffix(le.Message, ".")
		}
		return fmt.Sprintf("the server refused lifecycle rule %s (%s): skipped; run gc to abort old uploads",
			s3cache.AbortMultipartRuleID, why), nil
	case err != nil:
		return "", err
	}
	what := "abort incomplete multipart uploads after " + inDays(rule.Days)
	id := rule.ID
	if id == "" {
		id = "(without an ID)"
	}
	switch rule.Change {
	case s3cache.RuleAdded:
		return fmt.Sprintf("added lifecycle rule %s: %s", id, what), nil
	case s3cache.RuleUpdated:
		if rule.WasDays > 0 {
			what += " (was " + inDays(rule.WasDays) + ")"
		}
		return fmt.Sprintf("updated lifecycle rule %s: %s", id, what), nil
	}
	return fmt.Sprintf("kept the existing lifecycle rule %s: %s", id, what), nil
}

// inDays is "1 day", "7 days".
func inDays(n int) string {
	return fmt.Sprintf("%d %s", n, plural(int64(n), "day", "days"))
}

package main

import "strings"

// shellQuote joins args into one line a POSIX shell reads back as the same
// words: plain words stay as they are, any other in single quotes. Every
// command the CLI prints for a person to run goes through it, so that it
// pastes (an s3:// URL's '&' would otherwise end the command there).
func shellQuote(args ...string) string {
	words := make([]string, len(args))
	for i, a := range args {
		words[i] = shellWord(a)
	}
	return strings.Join(words, " ")
}

// shellWord quotes one word: unchanged when every byte is one a shell
// never treats specially, else in single quotes (a ' inside as '\”).
func shellWord(s string) string {
	if s != "" && strings.Trim(s, shellSafe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellSafe are the bytes that mean nothing to a shell anywhere in a word.
const shellSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-"

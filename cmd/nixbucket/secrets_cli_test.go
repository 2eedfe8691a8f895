package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
)

// A leak is secret text that must never be printed: value is what the
// test passes, forbidden what it looks for in the output.
type leak struct {
	name      string
	value     string
	forbidden []string
}

// newLeak forbids value and every 16 characters of secret in a row.
func newLeak(name, value, secret string) leak {
	l := leak{name: name, value: value, forbidden: []string{value}}
	for i := 0; i+16 <= len(secret); i++ {
		l.forbidden = append(l.forbidden, secret[i:i+16])
	}
	return l
}

// secretCase is one run of the CLI with a secret somewhere in its input.
type secretCase struct {
	name  string
	args  []string
	env   []string
	stdin string
	leak  leak
	// objects are put in the case's bucket besides the template's.
	objects map[string]string
}

// cmdBase is what a command needs besides the secret: value flags (as
// "--name", "value" pairs) and positional arguments.
type cmdBase struct {
	flags, pos []string
}

// TestSecretsNeverPrinted runs every command of the CLI with a real Nix
// secret key, an AWS secret access key and a URL with a password in every
// place it takes text — each positional argument, each flag that takes a
// value (and its environment variable), parameters of the store URL, stdin,
// NIXBUCKET_SECRET_KEY (valid, and garbage) and AWS_SECRET_ACCESS_KEY —
// against a real S3 server, and checks that neither stdout nor stderr has
// the secret or any 16 characters of it in a row, raw or URL-escaped. The
// commands and flags come from the app itself, so a new one is covered.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	dir := t.TempDir()
	expr := nixtest.WriteExpr(t, toolchainExpr("secrets"))
	storePath := nixtest.Build(t, expr, "lib")[0]
	keyText := generateKey(t)
	keyFile := filepath.Join(dir, "key.sec")
	binFile := filepath.Join(dir, "tool")
	for f, s := range map[string]string{keyFile: keyText, binFile: "#!/bin/sh\n"} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, body, _ := strings.Cut(keyText, ":")
	aws := awsShapedSecret(t)
	password := rand.Text()
	endpoint := strings.TrimPrefix(srv.Endpoint, "http://")
	secrets := []leak{
		newLeak("nix key", keyText, body),
		newLeak("AWS secret", aws, aws),
		newLeak("URL password", "http://nbuser:"+password+"@"+endpoint+"/x", password),
	}
	garbage := []leak{
		newLeak("key without its name", body, body),
		newLeak("truncated key", keyText[:60], keyText[len("secret-test-1:"):60]),
		newLeak("key with a typo", keyText[:40]+"!"+keyText[41:], body[27:]),
		newLeak("key with a newline", keyText+"\n", body),
	}

	// Every case gets a bucket of its own, a copy of this one: a root, a
	// release, the pushed path.
	template := srv.NewBucket(t)
	u := srv.StoreURL(template)
	for _, args := range [][]string{
		{"push", "--cache", u, "--secret-key-file", keyFile, "--root", "toolchain", storePath},
		{"publish", "binary", "--bucket", u, "--version", "v1.0.0", "--target", "x86_64-linux", binFile},
	} {
		if code, _, stderr := runBin(t, creds(srv), args...); code != 0 {
			t.Fatalf("nixbucket %q: exit %d: %s", args, code, stderr)
		}
	}
	seed := readObjects(t, srv.Open(t, template))

	bases := map[string]cmdBase{
		"version":              {},
		"nar":                  {pos: []string{storePath}},
		"path-info":            {pos: []string{storePath}},
		"key generate":         {flags: []string{"--name", "gen-1", "--secret-key-file", filepath.Join(dir, "gen.sec")}},
		"key public":           {flags: []string{"--secret-key-file", keyFile}},
		"key nixconf":          {flags: []string{"--cache-url", "https://cache.example.org", "--secret-key-file", keyFile}},
		"init":                 {flags: []string{"--cache", u}},
		"push":                 {flags: []string{"--cache", u, "--secret-key-file", keyFile}, pos: []string{storePath}},
		"serve":                {flags: []string{"--cache", u, "--listen", "127.0.0.1:0"}},
		"verify":               {flags: []string{"--cache", u}},
		"sign":                 {flags: []string{"--cache", u, "--secret-key-file", keyFile}, pos: []string{storePath}},
		"roots list":           {flags: []string{"--cache", u}},
		"roots show":           {flags: []string{"--cache", u}, pos: []string{"toolchain"}},
		"roots pin":            {flags: []string{"--cache", u}, pos: []string{"toolchain"}},
		"roots unpin":          {flags: []string{"--cache", u}, pos: []string{"toolchain"}},
		"roots rm":             {flags: []string{"--cache", u}, pos: []string{"gone"}},
		"gc":                   {flags: []string{"--cache", u, "--dry-run"}},
		"unlock":               {flags: []string{"--cache", u}},
		"erase":                {flags: []string{"--cache", u, "--dry-run"}},
		"stats":                {flags: []string{"--cache", u}},
		"rm":                   {flags: []string{"--cache", u, "--dry-run"}, pos: []string{"/nix/store/00000000000000000000000000000000-x"}},
		"watch":                {flags: []string{"--cache", u, "--secret-key-file", keyFile, "--queue", "queue.db", "--once"}},
		"toolchain refresh":    {flags: []string{"--cache", u, "--file", expr, "--attr", "lib", "--secret-key-file", keyFile}},
		"publish binary":       {flags: []string{"--bucket", u, "--version", "v1.0.0", "--target", "x86_64-linux"}, pos: []string{binFile}},
		"publish index":        {flags: []string{"--bucket", u}},
		"publish docker":       {flags: []string{"--image", "127.0.0.1:1/x", "--platform", "linux/amd64", "--oci-layout", filepath.Join(dir, "oci")}, pos: []string{binFile}},
		"publish docker-index": {flags: []string{"--image", "127.0.0.1:1/x"}, pos: []string{"127.0.0.1:1/x:a"}},
		"release classify":     {pos: []string{"v1.0.0"}},
		"hook":                 {flags: []string{"--queue", filepath.Join(dir, "queue.db")}},
		"queue retry":          {flags: []string{"--queue", filepath.Join(dir, "queue.db")}},
	}

	var cases []secretCase
	commands := leafCommands(nil, newApp(nil, io.Discard, io.Discard, nil).Commands)
	for _, lc := range commands {
		name := strings.Join(lc.path, " ")
		base, ok := bases[name]
		if !ok {
			t.Errorf("command %q has no base arguments in this test: add it", name)
		}
		add := func(what string, args []string, env []string, stdin string, l leak) {
			cases = append(cases, secretCase{
				name: name + "/" + what + "/" + l.name,
				args: append(slices.Clone(lc.path), args...),
				env:  env, stdin: stdin, leak: l,
			})
		}
		for _, l := range secrets {
			// As every positional argument, and as one more.
			for i := range base.pos {
				add(fmt.Sprintf("argument %d", i+1), concat(base.flags, replaceAt(base.pos, i, l.value)), nil, "", l)
			}
			add("extra argument", concat(base.flags, base.pos, []string{l.value}), nil, "", l)
			add("stdin", concat(base.flags, base.pos), nil, l.value+"\n", l)
			for _, f := range lc.cmd.Flags {
				df, ok := f.(cli.DocGenerationFlag)
				if !ok || !df.TakesValue() {
					if slices.Contains(f.Names(), "stdin") {
						add("--stdin", concat(base.flags, []string{"--stdin"}, base.pos), nil, l.value+"\n", l)
					}
					continue
				}
				flags := withoutFlag(base.flags, f.Names())
				add("--"+f.Names()[0], concat(flags, []string{"--" + f.Names()[0] + "=" + l.value}, base.pos), nil, "", l)
				for _, env := range df.GetEnvVars() {
					add("$"+env, concat(flags, base.pos), []string{env + "=" + l.value}, "", l)
				}
			}
			// In the store URL: as a parameter's value, escaped too, and as
			// the URL's userinfo.
			for _, flag := range []string{"--cache", "--bucket"} {
				i := slices.Index(base.flags, flag)
				if i < 0 {
					continue
				}
				for _, p := range []string{"key", "secret-key", "endpoint", "region", "profile", "compression"} {
					for _, v := range []string{l.value, url.QueryEscape(l.value)} {
						add(fmt.Sprintf("%s &%s=%.5s", flag, p, v), concat(replaceAt(base.flags, i+1, u+"&"+p+"="+v), base.pos), nil, "", l)
					}
				}
				if l.name == "URL password" {
					withUser := strings.Replace(u, "s3://", "s3://nbuser:"+password+"@", 1)
					withUser = strings.Replace(withUser, "endpoint=http://", "endpoint=http://nbuser:"+password+"@", 1)
					add(flag+" userinfo", concat(replaceAt(base.flags, i+1, withUser), base.pos), nil, "", l)
				}
			}
		}
		// Secrets in the environment.
		for _, l := range append([]leak{secrets[0]}, garbage...) {
			add("$NIXBUCKET_SECRET_KEY", concat(withoutFlag(base.flags, []string{"secret-key-file"}), base.pos), []string{"NIXBUCKET_SECRET_KEY=" + l.value}, "", l)
		}
		add("$AWS_SECRET_ACCESS_KEY", concat(base.flags, base.pos), []string{"AWS_SECRET_ACCESS_KEY=" + aws}, "", secrets[1])
	}

	// Secrets in what the bucket holds, which commands echo back: object
	// keys, and the text of a narinfo.
	readers := [][]string{
		{"stats"}, {"stats", "--json"}, {"stats", "--prometheus"}, {"verify"}, {"verify", "--json"}, {"roots", "list"}, {"roots", "list", "--json"},
		{"gc", "--dry-run"}, {"gc", "--dry-run", "--json"}, {"unlock"}, {"erase", "--dry-run"}, {"publish", "index"},
		{"sign", "--all", "--dry-run", "--secret-key-file", keyFile}, {"sign", "--all", "--json", "--secret-key-file", keyFile},
	}
	for _, l := range secrets {
		objects := map[string]string{
			"0000000000000000000000000000000a.narinfo": "StorePath: /nix/store/0000000000000000000000000000000a-" + l.value +
				"\nURL: nar/" + l.value + ".nar\nCompression: none\nNarHash: sha256:" + l.value + "\nNarSize: 1\nReferences: \nSig: " + l.value + "\n",
		}
		if !strings.Contains(l.value, "://") {
			for _, k := range []string{"_releases/v2.0.0/x86_64-linux/" + l.value, "_releases/" + l.value + "/x/tool", "roots/" + l.value + "/1.json", "locks/" + l.value, "nar/" + l.value + ".nar.xz"} {
				objects[k] = l.value
			}
		}
		for _, r := range readers {
			flag := "--cache"
			if r[0] == "publish" {
				flag = "--bucket"
			}
			cases = append(cases, secretCase{
				name: strings.Join(r, " ") + "/bucket content/" + l.name,
				args: concat(r, []string{flag, u}), leak: l, objects: objects,
			})
		}
	}

	credEnv := creds(srv)
	var mu sync.Mutex
	codes := map[int]int{}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				bucket := template
				if slices.ContainsFunc(concat(tc.args, tc.env), func(a string) bool { return strings.Contains(a, template) }) {
					bucket = srv.NewBucket(t)
					putObjects(t, srv.Open(t, bucket), seed, tc.objects)
				}
				own := func(s []string) []string {
					out := make([]string, len(s))
					for i, a := range s {
						out[i] = strings.ReplaceAll(a, template, bucket)
					}
					return out
				}
				args := own(tc.args)
				code, stdout, stderr := runServing(t, own(append(slices.Clone(credEnv), tc.env...)), tc.stdin, args...)
				mu.Lock()
				codes[code]++
				mu.Unlock()
				for _, out := range []string{stdout, stderr} {
					for _, form := range outputForms(out) {
						for _, l := range append(secrets, tc.leak) {
							for _, f := range l.forbidden {
								if strings.Contains(form, f) {
									t.Fatalf("nixbucket %q (env %q, stdin %q) printed %q of the %s (exit %d):\nstdout: %s\nstderr: %s",
										args, tc.env, tc.stdin, f, l.name, code, stdout, stderr)
								}
							}
						}
					}
				}
			})
		}
	})
	t.Logf("%d cases over %d commands; exit codes %v", len(cases), len(commands), codes)
}

// readObjects returns every object of b, key to content.
func readObjects(t *testing.T, b s3cache.Bucket) map[string]string {
	t.Helper()
	ctx := context.Background()
	objs := map[string]string{}
	err := b.List(ctx, "", func(o s3cache.ObjectInfo) error {
		rc, err := b.Get(ctx, o.Key)
		if err != nil {
			return err
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		objs[o.Key] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// putObjects puts the objects of every map in b, in parallel.
func putObjects(t *testing.T, b s3cache.Bucket, objs ...map[string]string) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(8)
	for _, m := range objs {
		for k, v := range m {
			g.Go(func() error {
				return b.Put(context.Background(), k, strings.NewReader(v), int64(len(v)), s3cache.PutOptions{})
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// leafCmd is a command that runs, with the names that lead to it.
type leafCmd struct {
	path []string
	cmd  *cli.Command
}

// leafCommands lists the commands under cmds that have no subcommands.
func leafCommands(path []string, cmds []*cli.Command) []leafCmd {
	var out []leafCmd
	for _, c := range cmds {
		p := append(slices.Clone(path), c.Name)
		if len(c.Subcommands) > 0 {
			out = append(out, leafCommands(p, c.Subcommands)...)
			continue
		}
		out = append(out, leafCmd{p, c})
	}
	return out
}

// outputForms returns out, and out with a URL's escapes of base64 undone
// and ' ' read as '+', to find a secret in any of its printed forms.
func outputForms(out string) []string {
	unescaped := strings.NewReplacer("%2B", "+", "%2b", "+", "%2F", "/", "%2f", "/", "%3D", "=", "%3d", "=", "%3A", ":", "%3a", ":").Replace(out)
	return []string{out, unescaped, strings.ReplaceAll(unescaped, " ", "+")}
}

// generateKey returns the text of a new secret key whose base64 has '+'
// (which a URL query decodes to ' ') and one "//" (which filepath.Clean
// makes "/"), so that every run of the test meets both.
func generateKey(t *testing.T) string {
	t.Helper()
	for {
		key, err := signing.GenerateSecretKey("secret-test-1")
		if err != nil {
			t.Fatal(err)
		}
		text := key.Encode()
		if strings.Contains(text, "+") && strings.Count(text, "//") == 1 && !strings.Contains(text, "///") {
			return text
		}
	}
}

// awsShapedSecret returns a random secret shaped like an AWS secret access
// key: 40 characters of base64, with upper and lower case and digits, and
// no '/' (one that has a '/' is not recognised inside a path it was not
// given in; see redact).
func awsShapedSecret(t *testing.T) string {
	t.Helper()
	for {
		b := make([]byte, 30)
		rand.Read(b)
		s := base64.StdEncoding.EncodeToString(b)
		if strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") &&
			strings.ContainsAny(s, "0123456789") && !strings.Contains(s, "/") {
			return s
		}
	}
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// replaceAt returns a copy of s with s[i] = v.
func replaceAt(s []string, i int, v string) []string {
	s = slices.Clone(s)
	s[i] = v
	return s
}

// withoutFlag returns flags ("--name", "value" pairs and lone booleans)
// without the flag of any of names.
func withoutFlag(flags []string, names []string) []string {
	var out []string
	for i := 0; i < len(flags); i++ {
		if slices.Contains(names, strings.TrimLeft(flags[i], "-")) {
			i++
			continue
		}
		out = append(out, flags[i])
	}
	return out
}

// runServing runs the CLI as runIn does; a command that starts serving
// (it prints "serving … on http://ADDR") is sent requests naming the
// secrets' kind of text, then SIGTERM.
func runServing(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a guard against a hang, not a measure
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin, args...)
	cmd.Env = cliEnv(t, env)
	cmd.Dir = t.TempDir() // secrets given as file names make files
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Text()
		stdout.WriteString(line + "\n")
		if _, addr, ok := strings.Cut(line, " on http://"); ok && strings.HasPrefix(line, "serving ") {
			for _, p := range []string{"/nix-cache-info", "/" + url.PathEscape(args[len(args)-1]) + ".narinfo", "/nar/x.nar.xz"} {
				if resp, err := http.Get("http://" + addr + p); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("nixbucket %q did not end", args)
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

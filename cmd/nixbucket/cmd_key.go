package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/signing"
)

func keyCommand() *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "manage Nix binary cache signing keys",
		Subcommands: []*cli.Command{
			{
				Name:      "generate",
				Usage:     "write a new secret key file (mode 0600) and print its public key",
				UsageText: "nixbucket key generate --name NAME --secret-key-file FILE",
				// The flags are checked by keyGenerate, not marked Required:
				// urfave/cli would print the whole help on stdout.
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "key name, e.g. cache.example.org-1 (no ':' or white space)"},
					&cli.StringFlag{Name: "secret-key-file", Usage: "where to write the secret key; never overwritten"},
				},
				Action: keyGenerate,
			},
			{
				Name:      "public",
				Usage:     "print the public key of a secret key",
				UsageText: "nixbucket key public --secret-key-file FILE… (or NIXBUCKET_SECRET_KEY)",
				Flags:     []cli.Flag{secretKeyFileFlag()},
				Action: func(c *cli.Context) error {
					keys, err := loadSecretKeys(c)
					if err != nil {
						return err
					}
					if len(keys) == 0 {
						return errNoSecretKey
					}
					for _, p := range publicKeys(keys) {
						if _, err := fmt.Fprintln(c.App.Writer, p); err != nil {
							return err
						}
					}
					return nil
				},
			},
			nixconfCommand(),
		},
	}
}

// secretKeyFileFlag is the repeatable --secret-key-file flag shared by
// every command that signs; NIXBUCKET_SECRET_KEY (the key text itself, one
// key per line) is its fallback. Values are not split on commas.
func secretKeyFileFlag() cli.Flag {
	return &cli.GenericFlag{Name: "secret-key-file", Value: &listFlag{},
		Usage: "secret key file (`FILE`; repeatable: one signature per key); else the key text in $NIXBUCKET_SECRET_KEY, one key per line"}
}

// secretKeyFiles returns the --secret-key-file values, in order.
func secretKeyFiles(c *cli.Context) []string { return listValues(c, "secret-key-file") }

// loadSecretKeys reads the keys of --secret-key-file, else those of the
// NIXBUCKET_SECRET_KEY variable; it returns none when neither is set.
func loadSecretKeys(c *cli.Context) ([]*signing.SecretKey, error) {
	if files := secretKeyFiles(c); len(files) > 0 {
		return readSecretKeyFiles(files)
	}
	return keysFromEnv()
}

// readSecretKeyFiles reads one key from each file.
func readSecretKeyFiles(files []string) ([]*signing.SecretKey, error) {
	keys := make([]*signing.SecretKey, 0, len(files))
	for _, f := range files {
		k, err := signing.ReadSecretKeyFile(f)
		if err != nil {
			return nil, withCode(exitBadKey, err)
		}
		keys = append(keys, k)
	}
	return keys, withCode(exitBadKey, signing.CheckDistinct(keys))
}

// keysFromEnv parses NIXBUCKET_SECRET_KEY (one key per line), or returns
// none when it is unset.
func keysFromEnv() ([]*signing.SecretKey, error) {
	text, ok := os.LookupEnv("NIXBUCKET_SECRET_KEY")
	if !ok || strings.TrimSpace(text) == "" {
		return nil, nil
	}
	keys, err := signing.ParseSecretKeys(text)
	if err != nil {
		return nil, withCode(exitBadKey, fmt.Errorf("NIXBUCKET_SECRET_KEY: %w", err))
	}
	return keys, nil
}

// errNoSecretKey is the error of a command that needs a key and got none.
var errNoSecretKey = withCode(exitBadKey, errors.New("no secret key: give --secret-key-file FILE or set NIXBUCKET_SECRET_KEY"))

// publicKeys returns the public halves of keys, in nix.conf's form.
func publicKeys(keys []*signing.SecretKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.PublicKey().String()
	}
	return out
}

func keyGenerate(c *cli.Context) error {
	name, file := c.String("name"), c.String("secret-key-file")
	switch {
	case c.NArg() > 0:
		return usageErrorf("key generate takes no arguments, got %q; give --name NAME --secret-key-file FILE", c.Args().First())
	case !c.IsSet("name"):
		return usageErrorf("key generate needs --name NAME (e.g. cache.example.org-1)")
	case file == "":
		return usageErrorf("key generate needs --secret-key-file FILE, where the secret key is written")
	}
	k, err := signing.GenerateSecretKey(name)
	if err != nil {
		return usageErrorf("generating key: %w", err)
	}
	// The file name is shown only in its safe form: it could be key text
	// given in the wrong place.
	shown := signing.SafeKeyPath(file)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return withCode(exitFailure, fmt.Errorf("%s already exists; refusing to overwrite a key", shown))
	}
	if err != nil {
		return withCode(exitFailure, fmt.Errorf("creating key file %s: %w", shown, pathErrorCause(err)))
	}
	if _, err := f.WriteString(k.Encode()); err != nil {
		f.Close()
		os.Remove(file)
		return fmt.Errorf("writing key file %s: %w", shown, pathErrorCause(err))
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(file)
		return fmt.Errorf("writing key file %s: %w", shown, pathErrorCause(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing key file %s: %w", shown, pathErrorCause(err))
	}
	_, err = fmt.Fprintln(c.App.Writer, k.PublicKey())
	return err
}

// pathErrorCause drops the path an *fs.PathError repeats ("open FILE: …"),
// keeping the cause.
func pathErrorCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func nixconfCommand() *cli.Command {
	return &cli.Command{
		Name:  "nixconf",
		Usage: "print the nix.conf lines that make Nix substitute from the cache",
		Description: "For an s3:// cache, when the nix on PATH has no S3 support (Debian's nix-bin) or cannot tell, " +
			"the lines are followed by comments that give the other way: nixbucket serve in front of the bucket, " +
			"and an http:// substituter.",
		UsageText: "nixbucket key nixconf --cache-url URL --secret-key-file FILE…",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cache-url", EnvVars: []string{"NIXBUCKET_CACHE"}, Usage: "the URL Nix reads the cache from (e.g. s3://… or https://…)"},
			secretKeyFileFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.String("cache-url") == "" {
				return usageErrorf("key nixconf needs --cache-url URL (or NIXBUCKET_CACHE)")
			}
			keys, err := loadSecretKeys(c)
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				return errNoSecretKey
			}
			u, err := readerURL(c.String("cache-url"))
			if err != nil {
				return err
			}
			w := c.App.Writer
			if _, err := fmt.Fprintf(w, "substituters = %s\ntrusted-public-keys = %s\n", u, strings.Join(publicKeys(keys), " ")); err != nil {
				return err
			}
			if !strings.HasPrefix(u, "s3://") {
				return nil
			}
			support, version := nixS3Support(c.Context)
			_, err = io.WriteString(w, serveWay(u, support, version))
			return err
		},
	}
}

// serveListen is the address serveWay's command listens on.
const serveListen = "127.0.0.1:8080"

// serveWay is what key nixconf adds after the lines for an s3:// cache, as
// nix.conf comments: nothing when this machine's Nix reads s3:// stores;
// when it cannot (Debian's nix-bin), or when that is unknown, the other
// way, nixbucket serve in front of the bucket and an http:// substituter,
// and which to use.
func serveWay(u string, support nixS3, version string) string {
	serve := shellQuote("nixbucket", "serve", "--cache", u, "--listen", serveListen)
	var b strings.Builder
	switch support {
	case nixS3Yes:
		return ""
	case nixS3No:
		fmt.Fprintf(&b, "# This machine's Nix (%s) has no S3 support (Debian's nix-bin is built without it): it cannot read\n", version)
		fmt.Fprintf(&b, "# the s3:// substituter above. Use nixbucket serve instead: run, with the bucket's credentials,\n")
	default:
		fmt.Fprintf(&b, "# A Nix without S3 support (Debian's nix-bin) cannot read the s3:// substituter above; for one, run\n")
		fmt.Fprintf(&b, "# nixbucket serve in front of the bucket, with its credentials,\n")
	}
	fmt.Fprintf(&b, "#   %s\n", serve)
	fmt.Fprintf(&b, "# and use this substituters line in place of the one above:\n")
	fmt.Fprintf(&b, "# substituters = http://%s\n", serveListen)
	return b.String()
}

// readerURL drops the parameters only a writer needs (the signing key file,
// compression, upload tuning, what to write beside the NARs) from a store
// URL, so the line can be given to readers; the rest (endpoint, region,
// scheme, profile, priority, want-mass-query, store, tls-certificate and
// tls-private-key, and the settings of Nix's own reads that nixbucket's
// commands refuse: trusted, local-nar-cache, path-info-cache-size) is kept
// as written.
func readerURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "", usageErrorf("bad cache URL %q: want s3://BUCKET?…, http(s)://… or file:///DIR", raw)
	}
	writerOnly := []string{"secret-key", "secret-keys", "compression", "parallel-compression", "compression-level",
		"multipart-upload", "multipart-chunk-size", "multipart-threshold", "buffer-size", "storage-class",
		"narinfo-compression", "write-nar-listing", "ls-compression", "log-compression", "index-debug-info"}
	base, query, _ := strings.Cut(raw, "?")
	var keep []string
	for _, kv := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if kv != "" && !slices.Contains(writerOnly, k) {
			keep = append(keep, kv)
		}
	}
	if len(keep) == 0 {
		return base, nil
	}
	return base + "?" + strings.Join(keep, "&"), nil
}

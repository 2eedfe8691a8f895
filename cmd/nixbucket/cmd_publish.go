package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/publish"
	"github.com/nixbucket/nixbucket/publish/oci"
	"github.com/nixbucket/nixbucket/s3cache"
)

func releaseCommand() *cli.Command {
	return &cli.Command{
		Name:  "release",
		Usage: "release helpers for CI scripts",
		Subcommands: []*cli.Command{{
			Name:      "classify",
			Usage:     "print the class of a version: stable, extra or development",
			UsageText: "nixbucket release classify VERSION",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageErrorf("release classify takes exactly one VERSION, got %d arguments", c.NArg())
				}
				if strings.TrimSpace(c.Args().First()) == "" {
					return usageErrorf("release classify: the VERSION is empty")
				}
				_, err := fmt.Fprintln(c.App.Writer, publish.Classify(c.Args().First()))
				return err
			},
		}},
	}
}

func publishCommand() *cli.Command {
	return &cli.Command{
		Name:  "publish",
		Usage: "publish release binaries, container images and the release page",
		Subcommands: []*cli.Command{
			publishBinaryCommand(),
			publishIndexCommand(),
			publishDockerCommand(),
			publishDockerIndexCommand(),
		},
	}
}

func bucketFlag() cli.Flag {
	return &cli.StringFlag{Name: "bucket", Usage: "release bucket `URL` (s3://BUCKET?endpoint=…&region=…, file:///DIR)", EnvVars: []string{"NIXBUCKET_RELEASE_BUCKET"}}
}

func prefixFlag() cli.Flag {
	return &cli.StringFlag{Name: "prefix", Value: publish.DefaultPrefix, Usage: "key `PREFIX` of the releases in the bucket (not in the cache layout: nar/, locks/, roots/, …)"}
}

// releaseBucket opens --bucket and checks that it answers, so that bad
// credentials, a missing bucket or an unreachable endpoint fail before any
// upload.
func releaseBucket(ctx context.Context, c *cli.Context) (s3cache.Bucket, error) {
	raw := c.String("bucket")
	if raw == "" {
		return nil, usageErrorf("no bucket: give --bucket URL or set NIXBUCKET_RELEASE_BUCKET")
	}
	u, err := s3cache.ParseURL(raw)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	b, err := openURL(ctx, u)
	if err != nil {
		return nil, err
	}
	jsonKey, _, err := publish.IndexKeys(c.String("prefix"))
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	if _, err := b.Stat(ctx, jsonKey); err != nil && !errors.Is(err, s3cache.ErrNotFound) {
		return nil, fmt.Errorf("opening release bucket %s: %w", u, err)
	}
	return b, nil
}

func publishBinaryCommand() *cli.Command {
	return &cli.Command{
		Name:  "binary",
		Usage: "upload release binaries to <prefix><version>/<target>/<name>, each with a .sha256 beside it",
		UsageText: "nixbucket publish binary --bucket URL [--prefix _releases/] [--version V] --target TRIPLE [--json] FILE...\n\n" +
			"The version defaults to the CI's tag, else its commit; every tag variable is read before any commit one:\n" +
			"GITHUB_REF_NAME when GITHUB_REF_TYPE=tag, DRONE_TAG, CI_COMMIT_TAG (Woodpecker, GitLab), then DRONE_COMMIT,\n" +
			"CI_COMMIT_SHA, GITHUB_SHA. Blank variables count as unset.\n\n" +
			"The old .sha256 files are deleted first, then every binary is uploaded, then their checksums: a checksum\n" +
			"always matches its binary. If the upload of a file fails, the files before it stay published without\n" +
			"checksums; run the command again. file:// buckets keep no Content-Type or Cache-Control.",
		Flags: []cli.Flag{
			bucketFlag(),
			prefixFlag(),
			&cli.StringFlag{Name: "version", Usage: "release `VERSION` (default: from the CI environment)"},
			&cli.StringFlag{Name: "target", Usage: "target `TRIPLE`, e.g. x86_64-unknown-linux-musl", EnvVars: []string{"TARGET"}},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: func(c *cli.Context) error {
			ctx := c.Context
			version := c.String("version")
			if version == "" {
				version = publish.VersionFromEnv(os.Getenv)
			}
			if version == "" {
				return usageErrorf("no version: give --version V or run in CI (DRONE_TAG, CI_COMMIT_TAG, GITHUB_REF_NAME; DRONE_COMMIT, CI_COMMIT_SHA, GITHUB_SHA)")
			}
			if c.String("target") == "" {
				return usageErrorf("no target: give --target TRIPLE (e.g. x86_64-unknown-linux-musl)")
			}
			if c.NArg() == 0 {
				return usageErrorf("no file to publish: give FILE arguments after the flags")
			}
			files := make([]publish.Binary, 0, c.NArg())
			for _, a := range c.Args().Slice() {
				files = append(files, publish.Binary{Path: a})
			}
			// Check names and files before contacting the bucket.
			for _, f := range files {
				if _, err := publish.BinaryKey(c.String("prefix"), version, c.String("target"), filepath.Base(f.Path)); err != nil {
					return withCode(exitUsage, err)
				}
				fi, err := os.Stat(f.Path)
				if err != nil || !fi.Mode().IsRegular() {
					return withCode(exitNotFound, fmt.Errorf("publishing %s: no such regular file", f.Path))
				}
			}
			b, err := releaseBucket(ctx, c)
			if err != nil {
				return err
			}
			res, err := publish.PublishBinaries(ctx, b, c.String("prefix"), version, c.String("target"), files)
			if err != nil {
				return publishCode(err)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			for _, p := range res {
				fmt.Fprintf(c.App.Writer, "published %s (%d bytes, sha256 %s)\n", p.Key, p.Size, p.SHA256)
			}
			return nil
		},
	}
}

// publishCode maps a publishing error to its exit code.
func publishCode(err error) error {
	switch {
	case errors.Is(err, publish.ErrBadName):
		return withCode(exitUsage, err)
	case errors.Is(err, publish.ErrNoFile):
		return withCode(exitNotFound, err)
	}
	return err
}

func publishIndexCommand() *cli.Command {
	sources := &listFlag{}
	return &cli.Command{
		Name:  "index",
		Usage: "rebuild the release page and JSON (<prefix>.html, <prefix>.json) from the bucket listing",
		UsageText: "nixbucket publish index --bucket URL [--prefix _releases/] [--base-url URL] [--title TEXT] [--source-url [LABEL=]TEMPLATE]…\n\n" +
			"Each --source-url adds a link to every version's \"Sources:\", as the seed's page had: {version} stands for the\n" +
			"version, {type} for tag or commit; the label defaults to the archive extension (.zip, .tar.gz), else \"source\":\n" +
			"  --source-url 'https://git.example.org/me/app/src/{type}/{version}' \\\n" +
			"  --source-url 'https://git.example.org/me/app/archive/{version}.zip'\n" +
			"The page is written before the JSON. file:// buckets keep no Content-Type or Cache-Control.",
		Flags: []cli.Flag{
			bucketFlag(),
			prefixFlag(),
			&cli.StringFlag{Name: "base-url", Usage: "public `URL` of the bucket for absolute links (default: links relative to the page)"},
			&cli.StringFlag{Name: "title", Value: "Releases", Usage: "page `TITLE`"},
			&cli.GenericFlag{Name: "source-url", Value: sources, Usage: "source link `[LABEL=]TEMPLATE` of each version, with {version} and {type} (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("publish index takes no arguments, got %q", c.Args().First())
			}
			if _, _, err := publish.IndexKeys(c.String("prefix")); err != nil {
				return withCode(exitUsage, err)
			}
			if bu := c.String("base-url"); bu != "" && !strings.HasPrefix(bu, "https://") && !strings.HasPrefix(bu, "http://") {
				return usageErrorf("--base-url %q: want an http:// or https:// URL", bu)
			}
			opts := publish.IndexOptions{Prefix: c.String("prefix"), BaseURL: c.String("base-url")}
			for _, s := range sources.values {
				st, err := publish.ParseSourceTemplate(s)
				if err != nil {
					return usageErrorf("--source-url: %w", err)
				}
				opts.Sources = append(opts.Sources, st)
			}
			ctx := c.Context
			b, err := releaseBucket(ctx, c)
			if err != nil {
				return err
			}
			ix, err := publish.PublishIndex(ctx, b, opts, c.String("title"))
			if err != nil {
				return publishCode(err)
			}
			jsonKey, htmlKey, _ := publish.IndexKeys(c.String("prefix"))
			for _, cat := range ix {
				fmt.Fprintf(c.App.Writer, "%s: %d versions\n", cat.Name, len(cat.Builds))
			}
			fmt.Fprintf(c.App.Writer, "wrote %s and %s\n", jsonKey, htmlKey)
			return nil
		},
	}
}

// listFlag is a repeatable string flag that, unlike cli.StringSliceFlag,
// does not split values on commas (an environment value may hold one).
type listFlag struct{ values []string }

func (l *listFlag) Set(v string) error { l.values = append(l.values, v); return nil }
func (l *listFlag) String() string     { return strings.Join(l.values, " ") }

// listValues returns the values of the listFlag name; none if c has no
// such flag.
func listValues(c *cli.Context, name string) []string {
	if l, ok := c.Generic(name).(*listFlag); ok {
		return l.values
	}
	return nil
}

// parseArgv reads an --entrypoint or --cmd value: a JSON array of strings
// (Dockerfile's exec form, ["/garage", "server"]) or words separated by
// spaces.
func parseArgv(flag, s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	if strings.HasPrefix(strings.TrimSpace(s), "[") {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err != nil {
			return nil, usageErrorf("--%s %s: not a JSON array of strings", flag, s)
		}
		return argv, nil
	}
	return strings.Fields(s), nil
}

// registryOptions reads --insecure and the credentials (DOCKER_AUTH, else
// the docker configuration).
func registryOptions(c *cli.Context) (oci.RemoteOptions, error) {
	kc, err := oci.Keychain(os.Getenv("DOCKER_AUTH"))
	if err != nil {
		return oci.RemoteOptions{}, usageErrorf("DOCKER_AUTH: %w", err)
	}
	return oci.RemoteOptions{Keychain: kc, Insecure: c.Bool("insecure")}, nil
}

// ociCode maps an image error to its exit code.
func ociCode(err error) error {
	switch {
	case errors.Is(err, oci.ErrNoFile), errors.Is(err, oci.ErrNotFound):
		return withCode(exitNotFound, err)
	case errors.Is(err, oci.ErrBadPlatform), errors.Is(err, oci.ErrBadFileSpec), errors.Is(err, oci.ErrBadRef):
		return withCode(exitUsage, err)
	case errors.Is(err, oci.ErrUntrusted):
		return withCode(exitRemote, fmt.Errorf("%w (give --insecure to skip TLS verification)", err))
	case errors.Is(err, oci.ErrDenied), errors.Is(err, oci.ErrUnreachable):
		return withCode(exitRemote, err)
	case errors.Is(err, context.Canceled):
		return withCode(exitInterrupted, err)
	}
	return withCode(exitFailure, err)
}

func insecureFlag() cli.Flag {
	return &cli.BoolFlag{Name: "insecure", Usage: "allow plain HTTP to the registry and skip TLS certificate verification (plain-HTTP loopback registries need not)"}
}

func publishDockerCommand() *cli.Command {
	env := &listFlag{}
	return &cli.Command{
		Name:  "docker",
		Usage: "build a FROM-scratch image of files for one platform and push it (no daemon)",
		UsageText: "nixbucket publish docker --image REF --platform OS/ARCH[/VARIANT] [--cmd …] [--entrypoint …] [--env K=V]… [--oci-layout DIR] [--insecure] FILE[:DEST]…\n\n" +
			"FILE goes to /NAME in the image, or to DEST (absolute; ending in / for a directory).\n" +
			"--cmd and --entrypoint take a JSON array ([\"/garage\", \"server\"]) or space-separated words.\n" +
			"Registry credentials: DOCKER_AUTH (the text of a docker config.json), else ~/.docker/config.json.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "image", Usage: "image `REF` to push, e.g. dxflrs/amd64_garage:v1.0.0"},
			&cli.StringFlag{Name: "platform", Usage: "image `PLATFORM`: OS/ARCH[/VARIANT], e.g. linux/amd64, linux/arm/v6"},
			&cli.StringFlag{Name: "cmd", Usage: "image `CMD`"},
			&cli.StringFlag{Name: "entrypoint", Usage: "image `ENTRYPOINT`"},
			&cli.GenericFlag{Name: "env", Value: env, Usage: "`KEY=VALUE` in the image's environment (repeatable)"},
			&cli.StringFlag{Name: "oci-layout", Usage: "write the image to the OCI layout `DIR` instead of pushing it"},
			insecureFlag(),
		},
		Action: func(c *cli.Context) error {
			ctx := c.Context
			ref, dir := c.String("image"), c.String("oci-layout")
			if ref == "" && dir == "" {
				return usageErrorf("no image: give --image REF (or --oci-layout DIR)")
			}
			if c.String("platform") == "" {
				return usageErrorf("no platform: give --platform OS/ARCH[/VARIANT], e.g. linux/amd64")
			}
			p, err := oci.ParsePlatform(c.String("platform"))
			if err != nil {
				return withCode(exitUsage, err)
			}
			if c.NArg() == 0 {
				return usageErrorf("no file for the image: give FILE[:DEST] arguments after the flags")
			}
			opts := oci.ImageOptions{Platform: p, Env: env.values}
			if opts.Cmd, err = parseArgv("cmd", c.String("cmd")); err != nil {
				return err
			}
			if opts.Entrypoint, err = parseArgv("entrypoint", c.String("entrypoint")); err != nil {
				return err
			}
			for _, a := range c.Args().Slice() {
				f, err := oci.ParseFileSpec(a)
				if err != nil {
					return withCode(exitUsage, err)
				}
				opts.Files = append(opts.Files, f)
			}
			img, err := oci.BuildImage(opts)
			if err != nil {
				return ociCode(err)
			}
			if dir != "" {
				d, err := oci.WriteLayout(dir, img, ref)
				if err != nil {
					return ociCode(err)
				}
				fmt.Fprintf(c.App.Writer, "wrote %s image %s to %s\n", oci.FormatPlatform(p), d, dir)
				return nil
			}
			ro, err := registryOptions(c)
			if err != nil {
				return err
			}
			d, err := oci.Push(ctx, img, ref, ro)
			if err != nil {
				return ociCode(err)
			}
			fmt.Fprintf(c.App.Writer, "pushed %s %s@%s\n", oci.FormatPlatform(p), ref, d)
			return nil
		},
	}
}

func publishDockerIndexCommand() *cli.Command {
	return &cli.Command{
		Name:      "docker-index",
		Usage:     "push a multi-platform image index over per-platform images, reading each one's platform",
		UsageText: "nixbucket publish docker-index --image REF [--insecure] SOURCE_REF…",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "image", Usage: "index `REF` to push, e.g. dxflrs/garage:v1.0.0"},
			insecureFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.String("image") == "" {
				return usageErrorf("no image: give --image REF")
			}
			if c.NArg() == 0 {
				return usageErrorf("no source image: give SOURCE_REF arguments after the flags")
			}
			ro, err := registryOptions(c)
			if err != nil {
				return err
			}
			d, entries, err := oci.PushIndex(c.Context, c.String("image"), c.Args().Slice(), ro)
			if err != nil {
				return ociCode(err)
			}
			fmt.Fprintf(c.App.Writer, "pushed index %s@%s\n", c.String("image"), d)
			for _, e := range entries {
				fmt.Fprintf(c.App.Writer, "  %s %s@%s\n", oci.FormatPlatform(e.Platform), e.Source, e.Digest)
			}
			return nil
		},
	}
}

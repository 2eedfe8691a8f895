// Command nixbucket pushes Nix closures to an S3 binary cache, keeps the
// cache healthy and publishes releases. Run `nixbucket help` for commands.
//
// Exit status:
//
//	0    success
//	1    failure (I/O, server, or a fault found by a check)
//	2    usage: unknown command or flag, bad argument or store URL
//	3    not found: a path outside the store or not valid in it, no Nix store, a missing file
//	4    bad key: a missing, unreadable or malformed signing key
//	5    remote failure: access denied, missing bucket, an endpoint unreachable
//	     or not answering (after --retry-for), any error answer of the server
//	130  interrupted
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/redact"
)

// version is set with -ldflags "-X main.version=…" by the Makefile.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfiles := startProfiles(os.Getenv)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stopProfiles()
	stop()
	os.Exit(code)
}

// run executes the CLI with args (args[0] is the program name) and returns
// the exit status; errors are printed as one line on stderr.
// Everything it writes on stdout and stderr is redacted (see redact).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	r := newRedactor(args)
	out, errOut := redact.NewWriter(stdout, r), redact.NewWriter(stderr, r)
	defer out.Flush()
	defer errOut.Flush()
	stdout, stderr = out, errOut
	app := newApp(stdin, stdout, stderr, r)
	err := app.RunContext(ctx, hookArgs(args))
	if err == nil {
		return 0
	}
	code := exitCode(ctx, err)
	msg := r.String(strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " "))
	fmt.Fprintf(stderr, "nixbucket: %s\n", msg)
	return code
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, r *redact.Redactor) *cli.App {
	app := &cli.App{
		Name:      "nixbucket",
		Usage:     "Nix binary caches and releases in an S3 bucket",
		Version:   version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "verbose", Usage: "log debug details on stderr"},
		}, netFlags()...),
		Before: func(c *cli.Context) error {
			level := slog.LevelInfo
			if c.Bool("verbose") {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(redact.NewHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}), r)))
			return withS3Options(c)
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("unknown command %q; run 'nixbucket help'", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return withCode(exitUsage, err)
		},
		Commands:       commands(),
		ExitErrHandler: func(*cli.Context, error) {},
		Metadata:       map[string]any{redactorKey: r},
	}
	app.CustomAppHelpTemplate = cli.AppHelpTemplate + exitStatusHelp
	quietUsageErrors(app.Commands, app.OnUsageError)
	return app
}

// quietUsageErrors makes every command report a usage error as one line
// (exit 2) instead of urfave/cli's "Incorrect Usage" and full help.
func quietUsageErrors(cmds []*cli.Command, f cli.OnUsageErrorFunc) {
	for _, c := range cmds {
		c.OnUsageError = f
		quietUsageErrors(c.Subcommands, f)
	}
}

const exitStatusHelp = `
EXIT STATUS:
   0 success; 1 failure; 2 usage; 3 not found (path, store, file); 4 bad key;
   5 remote failure (access denied, missing bucket, unreachable, not answering); 130 interrupted
`

// commands lists the top-level commands.
func commands() []*cli.Command {
	return []*cli.Command{
		versionCommand(),
		narCommand(),
		pathInfoCommand(),
		keyCommand(),
		initCommand(),
		pushCommand(),
		serveCommand(),
		verifyCommand(),
		signCommand(),
		rootsCommand(), gcCommand(), unlockCommand(), eraseCommand(), statsCommand(),
		rmCommand(),
		watchCommand(),
		toolchainCommand(),
		publishCommand(), releaseCommand(),
		hookCommand(), queueCommand(),
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print nixbucket's version",
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprintf(c.App.Writer, "nixbucket %s\n", version)
			return err
		},
	}
}

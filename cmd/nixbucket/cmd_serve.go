package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/serve"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve a bucket read-only over HTTP as a Nix binary cache",
		UsageText: "nixbucket serve --cache URL [--listen 127.0.0.1:8080]",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`ADDR` to listen on (port 0 picks one)"},
		},
		Action: func(c *cli.Context) error {
			ctx := c.Context
			u, err := cacheURL(c)
			if err != nil {
				return err
			}
			b, err := openBucket(ctx, u)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return usageErrorf("listening on %s: %w", c.String("listen"), err)
			}
			srv := &http.Server{
				Handler:           serve.Handler(b, slog.Default()),
				ReadHeaderTimeout: serve.ReadHeaderTimeout,
				IdleTimeout:       serve.IdleTimeout,
			}
			fmt.Fprintf(c.App.Writer, "serving %s on http://%s\n", u, ln.Addr())
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return nil
		},
	}
}

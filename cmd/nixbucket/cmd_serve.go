package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/serve"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve a bucket read-only over HTTP as a Nix binary cache",
		UsageText: "nixbucket serve --cache URL [--listen 127.0.0.1:8080] [--htpasswd FILE] [--tls-cert FILE --tls-key FILE] [--serve-all]\n\n" +
			"Serves the cache's layout only (nix-cache-info, *.narinfo, *.ls, nar/, log/, realisations/), with\n" +
			"Range, ETag/Last-Modified, Cache-Control, and one log line per request on stderr. Nix sends the\n" +
			"--htpasswd user's password from its netrc-file. SIGTERM or SIGINT lets requests in flight finish.",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`ADDR` to listen on (port 0 picks one)"},
			&cli.StringFlag{Name: "htpasswd", Usage: "require HTTP basic auth as a user of `FILE` (bcrypt: htpasswd -B)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with the certificate (chain) in PEM `FILE`"},
			&cli.StringFlag{Name: "tls-key", Usage: "the private key of --tls-cert, PEM `FILE`"},
			&cli.BoolFlag{Name: "serve-all", Usage: "serve every key of the bucket, also locks/, roots/, stats/ (host names, PIDs, history) and release pages"},
		},
		Action: func(c *cli.Context) error {
			ctx := c.Context
			u, err := cacheURL(c)
			if err != nil {
				return err
			}
			opts := serve.Options{ServeAll: c.Bool("serve-all"), Logger: slog.Default()}
			if f := c.String("htpasswd"); f != "" {
				if opts.Users, err = serve.LoadHtpasswd(f); err != nil {
					return usageErrorf("--htpasswd: %w", err)
				}
			}
			var tlsConfig *tls.Config
			switch cert, key := c.String("tls-cert"), c.String("tls-key"); {
			case (cert == "") != (key == ""):
				return usageErrorf("--tls-cert and --tls-key go together")
			case cert != "":
				pair, err := tls.LoadX509KeyPair(cert, key)
				if err != nil {
					return usageErrorf("loading --tls-cert and --tls-key: %w", err)
				}
				tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
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
				Handler:           serve.New(b, opts),
				TLSConfig:         tlsConfig,
				ReadHeaderTimeout: serve.ReadHeaderTimeout,
				IdleTimeout:       serve.IdleTimeout,
				MaxHeaderBytes:    serve.MaxHeaderBytes,
				// Handshake failures and bad requests from scanners: debug only.
				ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug),
			}
			scheme := "http"
			if tlsConfig != nil {
				scheme = "https"
			}
			fmt.Fprintf(c.App.Writer, "serving %s on %s://%s\n", u, scheme, ln.Addr())
			errc := make(chan error, 1)
			go func() {
				if tlsConfig != nil {
					errc <- srv.ServeTLS(ln, "", "")
				} else {
					errc <- srv.Serve(ln)
				}
			}()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			slog.Info("shutting down: finishing the requests in flight", "timeout", serve.ShutdownTimeout)
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serve.ShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				if !errors.Is(err, context.DeadlineExceeded) {
					return err
				}
				slog.Warn("shutting down: requests still in flight cut off", "after", serve.ShutdownTimeout)
				srv.Close()
			}
			return nil
		},
	}
}

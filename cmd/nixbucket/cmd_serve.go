package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/metrics"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/stats"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve a bucket read-only over HTTP as a Nix binary cache",
		UsageText: "nixbucket serve --cache URL [--listen 127.0.0.1:8080] [--htpasswd FILE] [--tls-cert FILE --tls-key FILE] [--serve-all] [--metrics-listen ADDR]\n" +
			"    [--accept-push --push-token-file FILE --trusted-public-key KEY... [--lock-wait DURATION] [--lock-idle DURATION] [--lock-max-hold DURATION]]\n\n" +
			"Serves the cache's layout only (nix-cache-info, *.narinfo, *.ls, nar/, log/, realisations/), with\n" +
			"Range, ETag/Last-Modified, Cache-Control, and one log line per request on stderr. Nix sends the\n" +
			"--htpasswd user's password from its netrc-file. SIGTERM or SIGINT lets requests in flight finish.\n\n" +
			"With --accept-push, holders of the push token (the password of HTTP basic auth under any user name,\n" +
			"as Nix sends it from its netrc-file, or a bearer token) may PUT NARs, listings and narinfos, as\n" +
			"`nix copy --to http://…` and `nixbucket push --cache http://…` do. A narinfo is stored only if a\n" +
			"--trusted-public-key signed it, its NAR is in the cache with the FileHash and FileSize it names, and\n" +
			"its references are in the cache. Nothing is deleted; writes hold the shared cache lock.\n\n" +
			"With --metrics-listen, Prometheus metrics (requests by method, kind of key and status, bytes served, bucket\n" +
			"latency) are served at http://ADDR/metrics, a listener of their own, without authentication.",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`ADDR` to listen on (port 0 picks one)"},
			&cli.StringFlag{Name: "htpasswd", Usage: "require HTTP basic auth as a user of `FILE` (bcrypt: htpasswd -B)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with the certificate (chain) in PEM `FILE`"},
			&cli.StringFlag{Name: "tls-key", Usage: "the private key of --tls-cert, PEM `FILE`"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "serve Prometheus metrics at http://`ADDR`/metrics (port 0 picks one)"},
			&cli.BoolFlag{Name: "serve-all", Usage: "serve every key of the bucket, also locks/, roots/, stats/ (host names, PIDs, history) and release pages"},
			&cli.BoolFlag{Name: "accept-push", Usage: "accept pushes (PUT) from holders of the --push-token-file token"},
			&cli.StringFlag{Name: "push-token-file", Usage: "the push token: the one line of `FILE` (e.g. openssl rand -hex 32 > FILE)"},
			trustedKeyFlag("with --accept-push, store only narinfos with a valid signature by this key"),
			&cli.DurationFlag{Name: "lock-wait", Value: 5 * time.Minute, Usage: "a push waits up to `DURATION` for a running gc to finish (then 503)"},
			&cli.DurationFlag{Name: "lock-idle", Value: serve.DefaultLockIdle, Usage: "release the shared cache lock `DURATION` after the last push ended"},
			&cli.DurationFlag{Name: "lock-max-hold", Value: serve.DefaultLockMaxHold, Usage: "pushes take a new shared cache lock after `DURATION`, so that a waiting gc gets its turn while pushes never pause"},
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
			if opts.Push, err = servePushOptions(c); err != nil {
				return err
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
			var metricsAddr net.Addr
			if addr := c.String("metrics-listen"); addr != "" {
				reg := metrics.NewRegistry()
				opts.Metrics = prometheus.WrapRegistererWith(prometheus.Labels{"cache": stats.CacheLabel(u)}, reg)
				mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
				defer stop() // once the requests in flight have ended
				if metricsAddr, err = metrics.Listen(mctx, addr, reg); err != nil {
					ln.Close()
					return usageErrorf("--metrics-listen: %w", err)
				}
			}
			handler := serve.New(b, opts)
			if closer, ok := handler.(io.Closer); ok {
				defer closer.Close() // releases the cache lock, once the requests have ended
			}
			srv := &http.Server{
				Handler:           handler,
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
			if metricsAddr != nil {
				fmt.Fprintf(c.App.Writer, "metrics on http://%s/metrics\n", metricsAddr)
			}
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

// servePushOptions reads serve's --accept-push flags: nil without
// --accept-push; the token and at least one trusted key with it.
func servePushOptions(c *cli.Context) (*serve.PushOptions, error) {
	if !c.Bool("accept-push") {
		if c.String("push-token-file") != "" {
			return nil, usageErrorf("--push-token-file needs --accept-push")
		}
		return nil, nil
	}
	f := c.String("push-token-file")
	if f == "" {
		return nil, usageErrorf("--accept-push needs --push-token-file FILE (its one line is the token pushers present)")
	}
	token, _, err := serve.LoadToken(f)
	if err != nil {
		return nil, usageErrorf("--push-token-file: %w", err)
	}
	keys, err := trustedKeys(c)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, usageErrorf("--accept-push needs --trusted-public-key KEY: only narinfos signed by a trusted key are stored")
	}
	return &serve.PushOptions{
		Token:       token,
		TrustedKeys: keys,
		Lock:        lock.Options{Command: "serve --accept-push", Wait: c.Duration("lock-wait"), Logger: slog.Default()},
		LockIdle:    c.Duration("lock-idle"),
		LockMaxHold: c.Duration("lock-max-hold"),
	}, nil
}

package main

import "github.com/urfave/cli/v2"

func statsCommand() *cli.Command {
	return &cli.Command{Name: "stats", Usage: "figures of the cache", Action: func(c *cli.Context) error { return usageErrorf("stats is not built yet") }}
}

package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/signing"
)

// trustedKeyFlag is the repeatable --trusted-public-key flag of the
// commands that check signatures (verify, sign), with its
// NIXBUCKET_TRUSTED_PUBLIC_KEYS fallback; each value is a list as in
// nix.conf's trusted-public-keys.
func trustedKeyFlag(usage string) cli.Flag {
	return &cli.StringSliceFlag{Name: "trusted-public-key", EnvVars: []string{"NIXBUCKET_TRUSTED_PUBLIC_KEYS"},
		Usage: usage + " (`KEY` is name:base64, as in trusted-public-keys); repeatable"}
}

// trustedKeys parses --trusted-public-key; a malformed key is a bad-key
// error.
func trustedKeys(c *cli.Context) (signing.PublicKeys, error) {
	var keys []signing.PublicKey
	for _, list := range c.StringSlice("trusted-public-key") {
		ks, err := signing.ParsePublicKeys(list)
		if err != nil {
			return nil, withCode(exitBadKey, fmt.Errorf("--trusted-public-key: %w", err))
		}
		for _, k := range ks {
			keys = append(keys, k)
		}
	}
	return signing.NewPublicKeys(keys...), nil
}

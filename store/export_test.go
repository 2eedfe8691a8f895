package store

import (
	"context"
	"errors"

	"github.com/nix-community/go-nix/pkg/wire"
)

// HoldRead starts a read of d's database and keeps its snapshot open, with
// a statement mid-way through its rows, until release is called.
func HoldRead(ctx context.Context, d *DB) (release func() error, err error) {
	rows, err := d.db.QueryContext(ctx, "select path from ValidPaths")
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, errors.Join(errors.New("no valid paths"), rows.Close())
	}
	return rows.Close, nil
}

// QueryPathInfoUnchecked sends path to the daemon without checking its form
// first, to make the daemon report an error.
func QueryPathInfoUnchecked(ctx context.Context, d *Daemon, path string) (*PathInfo, error) {
	var info *PathInfo
	err := d.do(ctx, opQueryPathInfo,
		func(c *conn) error { return wire.WriteString(c.w, path) },
		func(c *conn) (err error) { info, err = readPathInfo(c.r, path); return err })
	return info, err
}

// IdleConns returns the daemon connections in the pool, as opaque values to
// compare.
func IdleConns(d *Daemon) []any {
	d.mu.Lock()
	defer d.mu.Unlock()
	var cs []any
	for _, c := range d.idle {
		cs = append(cs, c)
	}
	return cs
}

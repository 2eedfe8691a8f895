package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// helperEnv, when set, makes TestImmutableFallback the helper it runs as
// another user: it names the database copy and the path to query.
const helperEnv = "STORE_TEST_FALLBACK_HELPER"

// TestImmutableFallback opens, as user nobody, a WAL database in a
// directory nobody cannot write, with no -wal or -shm file: mode=ro cannot
// work there, so OpenDB must fall back to immutable=1 and still answer.
func TestImmutableFallback(t *testing.T) {
	if arg := os.Getenv(helperEnv); arg != "" {
		fallbackHelper(t, arg)
		return
	}
	f := getFixture(t)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "storefallback")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	copyDB := filepath.Join(dir, "db.sqlite")

	// A consistent copy of the live database, turned back into WAL mode;
	// closing the last connection removes the -wal and -shm files.
	src, err := sql.Open("sqlite", "file:"+store.DBPath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.ExecContext(ctx, "vacuum into ?", copyDB); err != nil {
		t.Fatalf("copying the database: %v", err)
	}
	_ = src.Close()
	dst, err := sql.Open("sqlite", "file:"+copyDB)
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := dst.QueryRowContext(ctx, "pragma journal_mode=wal").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	_ = dst.Close()
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(copyDB + suffix); err == nil {
			t.Fatalf("%s%s is still there", copyDB, suffix)
		}
	}

	// The test binary, where nobody can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "store.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	arg, _ := json.Marshal([]string{copyDB, f.top})
	out, err := nixtest.Output(ctx, []string{helperEnv + "=" + string(arg)},
		"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "-test.run=^TestImmutableFallback$", "-test.v")
	if err != nil {
		t.Fatalf("the helper failed: %v\n%s", err, out)
	}
	db, err := store.OpenDB(ctx, store.DBPath(), storepath.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want, err := db.QueryPathInfo(ctx, f.top)
	if err != nil {
		t.Fatal(err)
	}
	_, answer, ok := bytes.Cut(out, []byte(marker))
	var got helperAnswer
	if err := json.NewDecoder(bytes.NewReader(answer)).Decode(&got); !ok || err != nil {
		t.Fatalf("decoding the helper's answer: %v\n%s", err, out)
	}
	if h := want.NarHash.Format(nixhash.Base16, true); got.NarHash != h {
		t.Errorf("immutable read NarHash %s, want %s", got.NarHash, h)
	}
	want.NarHash, got.Info.NarHash = nil, nil
	got.Info.RegistrationTime = got.Info.RegistrationTime.Local()
	want.RegistrationTime = want.RegistrationTime.Local()
	if !reflect.DeepEqual(got.Info, want) {
		t.Errorf("immutable read %+v, want %+v", *got.Info, *want)
	}
}

// marker precedes the helper's answer in its output.
const marker = "ANSWER:"

type helperAnswer struct {
	Info    *store.PathInfo
	NarHash string
}

func fallbackHelper(t *testing.T, arg string) {
	var args []string
	if err := json.Unmarshal([]byte(arg), &args); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		t.Fatal("the helper runs as root")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	db, err := store.OpenDB(context.Background(), args[0], storepath.DefaultDir(), store.WithLogger(log))
	if err != nil {
		t.Fatalf("OpenDB as uid %d: %v", os.Getuid(), err)
	}
	defer db.Close()
	if !db.Immutable() {
		t.Fatal("OpenDB did not fall back to immutable")
	}
	info, err := db.QueryPathInfo(context.Background(), args[1])
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(helperAnswer{info, info.NarHash.Format(nixhash.Base16, true)})
	os.Stdout.WriteString(marker + string(js) + "\n")
}

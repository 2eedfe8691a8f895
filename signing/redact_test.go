package signing_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/signing"
)

type holder struct {
	Exported   *signing.SecretKey
	ByValue    signing.SecretKey
	unexported *signing.SecretKey
	unexpValue signing.SecretKey
}

// TestSecretKeyNeverPrints prints a key every way a program might — fmt
// verbs on the key, its pointer and structs holding it (exported and
// unexported fields, which fmt prints by reflection), slog's JSON and text
// handlers, encoding/json — and checks that no form of the secret (base64,
// hex, decimal bytes) appears.
func TestSecretKeyNeverPrints(t *testing.T) {
	t.Parallel()
	name, sk, _ := testKey()
	k, err := signing.ParseSecretKey(name + ":" + sk)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(mustDecode(sk))
	seed := raw[:32]
	forbidden := []string{
		sk[:16],
		hex.EncodeToString(seed[:8]),
		strings.ToUpper(hex.EncodeToString(seed[:8])),
		strings.Trim(fmt.Sprint(seed[:8]), "[]"), // decimal bytes "1 2 3 …"
		strings.Trim(fmt.Sprintf("%v", raw[32:40]), "[]"),
	}
	h := holder{Exported: k, ByValue: *k, unexported: k, unexpValue: *k}

	var outputs []string
	for _, v := range []any{k, *k, h, &h, []*signing.SecretKey{k}, map[string]signing.SecretKey{"k": *k}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%T", "%p"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
		outputs = append(outputs, fmt.Sprint(v), fmt.Sprintln(v))
	}
	var jsonLog, textLog bytes.Buffer
	for _, hdl := range []slog.Handler{slog.NewJSONHandler(&jsonLog, nil), slog.NewTextHandler(&textLog, nil)} {
		l := slog.New(hdl)
		l.Info("signing", "key", k, "value", *k, "holder", h, "holderp", &h)
		l.Info("group", slog.Group("g", slog.Any("key", k)))
	}
	outputs = append(outputs, jsonLog.String(), textLog.String())
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(js))

	for _, out := range outputs {
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Fatalf("output %q reveals the secret (%q)", out, f)
			}
		}
		assertNoSecret(t, out, sk)
	}

	// And what they do show is the name.
	for _, c := range []struct{ got, want string }{
		{fmt.Sprint(k), name},
		{fmt.Sprintf("%+v", *k), name},
		{fmt.Sprintf("%#v", k), `signing.SecretKey("test-1")`},
		{fmt.Sprintf("%q", k), `"test-1"`},
		{k.String(), name},
		{k.GoString(), `signing.SecretKey("test-1")`},
		{k.LogValue().String(), name},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !strings.Contains(jsonLog.String(), `"key":"test-1"`) {
		t.Errorf("JSON log %s does not show the key name", jsonLog.String())
	}
}

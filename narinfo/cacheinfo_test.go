package narinfo_test

import (
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/narinfo"
)

func TestCacheInfoValue(t *testing.T) {
	t.Parallel()
	const nixWrites = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
	for _, tc := range []struct {
		name, text, key, want string
		ok                    bool
	}{
		{"StoreDir", nixWrites, "StoreDir", "/nix/store", true},
		{"Priority", nixWrites, "Priority", "40", true},
		{"absent", nixWrites, "Compression", "", false},
		{"empty file", "", "StoreDir", "", false},
		{"no final newline", "StoreDir: /s", "StoreDir", "/s", true},
		{"CRLF", "StoreDir: /s\r\nPriority: 1\r\n", "StoreDir", "/s", true},
		{"no space after the colon", "StoreDir:/s\n", "StoreDir", "/s", true},
		{"value trimmed of tabs and spaces", "StoreDir: \t /s \t\n", "StoreDir", "/s", true},
		{"value keeps inner colons and spaces", "Note: a: b c\n", "Note", "a: b c", true},
		{"empty value", "StoreDir:\n", "StoreDir", "", true},
		{"the last line wins", "Priority: 10\nPriority: 20\n", "Priority", "20", true},
		{"key not trimmed, as Nix", " StoreDir: /s\n", "StoreDir", "", false},
		{"key before a space is another key", "StoreDir : /s\n", "StoreDir", "", false},
		{"case matters", "storedir: /s\n", "StoreDir", "", false},
		{"lines without a colon ignored", "garbage\nStoreDir: /s\nmore garbage\n", "StoreDir", "/s", true},
		{"a key inside a value is not a key", "Note: StoreDir: /x\n", "StoreDir", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := narinfo.LookupCacheInfo(tc.text, tc.key); got != tc.want || ok != tc.ok {
				t.Errorf("LookupCacheInfo(%q, %q) = %q, %v; want %q, %v", tc.text, tc.key, got, ok, tc.want, tc.ok)
			}
			if got := narinfo.CacheInfoValue(tc.text, tc.key); got != tc.want {
				t.Errorf("CacheInfoValue(%q, %q) = %q, want %q", tc.text, tc.key, got, tc.want)
			}
		})
	}
}

// FuzzCacheInfoValue checks that values come back trimmed and on one line,
// that a key is found exactly when a line starts with "key:", and that a
// "Key: value" line appended reads back as the value.
func FuzzCacheInfoValue(f *testing.F) {
	f.Add("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n", "StoreDir", "/x")
	f.Add("a:b\r\n:c\n\n", "", "v")
	f.Add(" StoreDir : x", "StoreDir", " \t")
	f.Fuzz(func(t *testing.T, text, key, value string) {
		got, ok := narinfo.LookupCacheInfo(text, key)
		if got != strings.Trim(got, " \t\r\n") || strings.Contains(got, "\n") || !ok && got != "" {
			t.Fatalf("LookupCacheInfo(%q, %q) = %q, %v", text, key, got, ok)
		}
		if narinfo.CacheInfoValue(text, key) != got {
			t.Fatal("CacheInfoValue disagrees with LookupCacheInfo")
		}
		if strings.ContainsAny(key, ":\n") {
			return
		}
		if present := strings.HasPrefix(text, key+":") || strings.Contains(text, "\n"+key+":"); ok != present {
			t.Fatalf("LookupCacheInfo(%q, %q) says present: %v", text, key, ok)
		}
		if strings.Contains(value, "\n") {
			return
		}
		appended := text + "\n" + key + ": " + value + "\n"
		if got, want := narinfo.CacheInfoValue(appended, key), strings.Trim(value, " \t\r"); got != want {
			t.Fatalf("after appending %q: got %q, want %q", key+": "+value, got, want)
		}
	})
}

// Package layout is the layout of a Nix binary cache in a bucket: the keys
// Nix reads and writes (src/libstore/binary-cache-store.cc), the ones
// nixbucket adds beside them, their patterns, their media types and the
// defaults of a new cache. Every package that names a key of the cache
// asks this one.
//
//	nix-cache-info              StoreDir, WantMassQuery, Priority
//	<hash>.narinfo              one store path: NAR hash, references, signatures
//	<hash>.ls                   the NAR's file listing (write-nar-listing)
//	nar/<filehash>.nar[.xz|…]   the (compressed) NAR
//	log/<drv base name>         a build log
//	realisations/<id>.doi       a content-addressed realisation
//	debuginfo/<build id>        a debug-info link (index-debug-info)
//	locks/…                     nixbucket: the cache lock (package lock)
//	roots/<name>/…              nixbucket: root manifests (package roots)
//	upstream/<time>-<id>.json   nixbucket: paths left to an upstream cache (package roots)
//	stats/…, gc/…               nixbucket: the stats history, gc's records
//
// <hash> is a store path's 32-character nix32 hash part, so narinfo keys
// are spread evenly over the key space, which push uses to list it in
// parallel ranges (HashAlphabet).
package layout

import (
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/nixbucket/nixbucket/storepath"
)

// Keys and key prefixes ("directories") of a cache.
const (
	// CacheInfoKey is the key of the cache's nix-cache-info.
	CacheInfoKey = "nix-cache-info"
	// NarDir holds the NARs.
	NarDir = "nar/"
	// LogDir holds build logs.
	LogDir = "log/"
	// RealisationsDir holds content-addressed realisations.
	RealisationsDir = "realisations/"
	// DebugInfoDir holds debug-info links.
	DebugInfoDir = "debuginfo/"
	// LocksDir holds nixbucket's lock objects.
	LocksDir = "locks/"
	// RootsDir holds nixbucket's root manifests.
	RootsDir = "roots/"
	// UpstreamDir holds nixbucket's upstream records: the paths a push
	// without a root left to an upstream cache (roots.UpstreamRecord).
	UpstreamDir = "upstream/"
	// StatsDir holds nixbucket's stats history.
	StatsDir = "stats/"
	// GCDir holds nixbucket's gc records (condemned objects).
	GCDir = "gc/"

	// NarInfoSuffix ends a narinfo key.
	NarInfoSuffix = ".narinfo"
	// ListingSuffix ends a NAR listing key.
	ListingSuffix = ".ls"
)

// Defaults of a new cache and of the NARs written to it.
const (
	// DefaultCompression is the NAR compression when none is given, as
	// Nix's compression setting.
	DefaultCompression = "xz"
	// DefaultPriority is the Priority of a new nix-cache-info.
	DefaultPriority = 40
)

// HashAlphabet is Nix's base-32 alphabet, in ascending byte order: the
// characters a narinfo key starts with.
const HashAlphabet = nixbase32.Alphabet

// Dirs lists the cache's top-level directories, Nix's and nixbucket's.
var Dirs = []string{NarDir, LogDir, RealisationsDir, DebugInfoDir, LocksDir, RootsDir, UpstreamDir, StatsDir, GCDir}

// NarInfoKey returns the narinfo key of a store path's hash part.
func NarInfoKey(hashPart string) string { return hashPart + NarInfoSuffix }

// NarInfoKeyOf returns the narinfo key of a store path.
func NarInfoKeyOf(storePath string) string { return NarInfoKey(storepath.HashPart(storePath)) }

// ListingKey returns the NAR listing key of a store path's hash part.
func ListingKey(hashPart string) string { return hashPart + ListingSuffix }

// NarKey returns the key of a NAR whose file (compressed) hash, in nix32,
// is fileHash; ext is the compression's extension (".xz", ".zst", "").
func NarKey(fileHash, ext string) string { return NarDir + fileHash + ".nar" + ext }

// LogKey returns the key of the build log of a derivation (a store path or
// its base name).
func LogKey(drv string) string { return LogDir + storepath.Base(drv) }

// NarInfoHash returns the hash part a narinfo key names, and whether key
// is one: <32 nix32 characters>.narinfo at the top level.
func NarInfoHash(key string) (string, bool) { return hashKey(key, NarInfoSuffix) }

// ListingHash returns the hash part a NAR listing key names, and whether
// key is one: <32 nix32 characters>.ls at the top level.
func ListingHash(key string) (string, bool) { return hashKey(key, ListingSuffix) }

func hashKey(key, suffix string) (string, bool) {
	h, ok := strings.CutSuffix(key, suffix)
	if !ok || !storepath.IsHashPart(h) {
		return "", false
	}
	return h, true
}

// IsNar reports whether key is under nar/.
func IsNar(key string) bool { return strings.HasPrefix(key, NarDir) }

// Kind is the kind of an object of the cache, by its key.
type Kind string

// Kinds of objects. The values appear in stats' JSON.
const (
	KindCacheInfo   Kind = "cache-info"
	KindNarInfo     Kind = "narinfo"
	KindNAR         Kind = "nar"
	KindListing     Kind = "listing"
	KindLog         Kind = "log"
	KindRealisation Kind = "realisation"
	KindDebugInfo   Kind = "debuginfo"
	KindLock        Kind = "lock"
	KindRoot        Kind = "root"
	KindUpstream    Kind = "upstream"
	KindOther       Kind = "other"
)

// KindOf returns the kind of the object at key.
func KindOf(key string) Kind {
	if key == CacheInfoKey {
		return KindCacheInfo
	}
	if _, ok := NarInfoHash(key); ok {
		return KindNarInfo
	}
	if _, ok := ListingHash(key); ok {
		return KindListing
	}
	for _, d := range []struct {
		dir  string
		kind Kind
	}{
		{NarDir, KindNAR}, {LogDir, KindLog}, {RealisationsDir, KindRealisation},
		{DebugInfoDir, KindDebugInfo}, {LocksDir, KindLock}, {RootsDir, KindRoot},
		{UpstreamDir, KindUpstream},
	} {
		if strings.HasPrefix(key, d.dir) {
			return d.kind
		}
	}
	return KindOther
}

// InLayout reports whether key is one Nix reads from a binary cache:
// nix-cache-info, <hash>.narinfo, <hash>.ls, and one name under nar/,
// log/ or realisations/. serve answers only these unless told to serve
// everything.
func InLayout(key string) bool {
	switch KindOf(key) {
	case KindCacheInfo, KindNarInfo, KindListing:
		return true
	case KindNAR, KindLog, KindRealisation:
		_, name, _ := strings.Cut(key, "/")
		return name != "" && !strings.Contains(name, "/")
	}
	return false
}

// Reserved reports whether keys whose first path element is first belong
// to the cache: one of Dirs, nix-cache-info, or a narinfo or listing
// name. Release files must not go there.
func Reserved(first string) bool {
	for _, d := range Dirs {
		if first+"/" == d {
			return true
		}
	}
	return first == CacheInfoKey || strings.HasSuffix(first, NarInfoSuffix) || strings.HasSuffix(first, ListingSuffix)
}

// ContentType returns the media type Nix gives key when it writes it
// (binary-cache-store.cc), or "" for a key Nix does not write.
func ContentType(key string) string {
	switch KindOf(key) {
	case KindCacheInfo:
		return "text/x-nix-cache-info"
	case KindNarInfo:
		return "text/x-nix-narinfo"
	case KindNAR:
		return "application/x-nix-nar"
	case KindListing, KindRealisation, KindDebugInfo:
		return "application/json"
	case KindLog:
		return "text/plain; charset=utf-8"
	}
	return ""
}

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles starts what the environment asks for, to find the next
// bottleneck by measurement: a pprof CPU profile written to
// $NIXBUCKET_CPUPROFILE and a runtime trace (`go tool trace`) written to
// $NIXBUCKET_TRACE. It returns the function that stops them and flushes
// the files; main calls it on every exit path (success, error, and after
// an interrupt, which main's context turns into a return). A file that
// cannot be written is reported on stderr and skipped: profiling never
// changes the command's outcome.
func startProfiles(getenv func(string) string) (stop func()) {
	var stops []func() error
	if file := getenv("NIXBUCKET_CPUPROFILE"); file != "" {
		s, err := startFile(file, func(f *os.File) (func(), error) {
			return pprof.StopCPUProfile, pprof.StartCPUProfile(f)
		})
		report("NIXBUCKET_CPUPROFILE", err)
		stops = append(stops, s...)
	}
	if file := getenv("NIXBUCKET_TRACE"); file != "" {
		s, err := startFile(file, func(f *os.File) (func(), error) {
			return trace.Stop, trace.Start(f)
		})
		report("NIXBUCKET_TRACE", err)
		stops = append(stops, s...)
	}
	return func() {
		var errs []error
		for _, s := range stops {
			errs = append(errs, s())
		}
		report("profile", errors.Join(errs...))
	}
}

// startFile creates file and starts a profile writing to it; the stop
// function it returns ends the profile and closes the file.
func startFile(file string, start func(*os.File) (func(), error)) ([]func() error, error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	end, err := start(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return []func() error{func() error {
		end()
		if err := f.Close(); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		return nil
	}}, nil
}

func report(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "nixbucket: %s: %v\n", what, err)
	}
}

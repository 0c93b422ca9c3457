package daemon

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags "-X github.com/contactcenter/agentd/daemon.version=...".
var (
	version = "dev"
	commit  = ""
)

// Version returns the version line printed by "agentd version".
func Version() string {
	c := commit
	if c == "" {
		c = vcsRevision()
	}
	return fmt.Sprintf("agentd %s (commit %s, %s, %s/%s)", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// vcsRevision returns the commit recorded by the go command, if any.
func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return "unknown"
}

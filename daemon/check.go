package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/contactcenter/agentd/agent"
)

// CheckConfig validates the configuration file and the directory it names
// and prints each problem on its own line to w. It returns an error when
// there is at least one problem.
func CheckConfig(path string, environ []string, w io.Writer) error {
	cfg, err := LoadConfig(path, environ)
	if err != nil {
		printProblems(w, err)
		return err
	}
	warnPermissions(w, path)
	if _, err := agent.LoadDirectory(cfg.Directory); err != nil {
		printProblems(w, err)
		return err
	}
	fmt.Fprintf(w, "%s: OK\n%s: OK\n", path, cfg.Directory)
	return nil
}

// warnPermissions warns when the configuration, which may hold secrets,
// can be read by other users.
func warnPermissions(w io.Writer, path string) {
	info, err := os.Stat(path)
	if err == nil && info.Mode().Perm()&0o004 != 0 {
		fmt.Fprintf(w, "%s: warning: readable by every user (mode %04o); if it holds secrets, run chmod 640 %s or use *_file keys\n", path, info.Mode().Perm(), path)
	}
}

func printProblems(w io.Writer, err error) {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			printProblems(w, e)
		}
		return
	}
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintln(w, line)
	}
}

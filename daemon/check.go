package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/events"
	"github.com/contactcenter/agentd/httpapi"
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
	var errs []error
	if _, err := agent.LoadDirectory(cfg.Directory); err != nil {
		errs = append(errs, err)
	}
	// The checks that the packages run at start, minus the connections.
	d := &Daemon{cfg: cfg}
	if err := events.ValidateConfig(d.eventsConfig()); err != nil {
		errs = append(errs, prefixLines(path+": nats: ", err))
	}
	if auth, err := d.authConfig(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	} else if err := httpapi.ValidateAuth(auth); err != nil {
		errs = append(errs, fmt.Errorf("%s: http.auth: %w", path, err))
	}
	if err := errors.Join(errs...); err != nil {
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

// prefixLines returns err with prefix on each line of its message, for
// errors of other packages that list several problems in one error.
func prefixLines(prefix string, err error) error {
	var lines []error
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if line = strings.TrimPrefix(line, events.ErrInvalidConfig.Error()+": "); line != events.ErrInvalidConfig.Error() {
			lines = append(lines, errors.New(prefix+line))
		}
	}
	return errors.Join(lines...)
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

package daemon

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
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
	data, err := os.ReadFile(path)
	if err != nil {
		err = fmt.Errorf("%s: cannot be read: %w: pass the configuration file with -config FILE", path, pathErrorCause(err))
		printProblems(w, err)
		return err
	}
	cfg, p := parseConfig(path, data, environ)
	if p.syntaxError {
		printProblems(w, p.err())
		return p.err()
	}

	warnPermissions(w, path)
	directoryErr := checkDirectory(cfg, p)
	checkWithPackages(cfg, p)
	if err := errors.Join(p.err(), directoryErr); err != nil {
		printProblems(w, err)
		return err
	}
	fmt.Fprintf(w, "%s: OK\n%s: OK\n", path, cfg.Directory)
	return nil
}

// checkDirectory reads and validates the directory file. A file that
// cannot be read is a problem of the directory key, added to p. The
// problems inside the file are returned, each with its line.
func checkDirectory(cfg Config, p *problems) error {
	if p.hasProblemUnder("directory") {
		return nil
	}
	data, err := os.ReadFile(cfg.Directory)
	if err != nil {
		fix := "set directory to the agent directory file"
		if errors.Is(err, fs.ErrPermission) {
			fix = "let the user that runs agentd read it, or " + fix
		}
		p.add("directory", "directory %q cannot be read: %v: %s", cfg.Directory, pathErrorCause(err), fix)
		return nil
	}
	_, err = agent.ParseDirectory(cfg.Directory, data)
	return err
}

// checkWithPackages runs the checks that the packages run at start, minus
// the connections. The checks of the file cover what they reject, so these
// are a safety net for what those checks miss. Each runs only when the
// keys it reads have no problem yet, so that no problem is printed twice.
func checkWithPackages(cfg Config, p *problems) {
	d := &Daemon{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	if !p.hasProblemUnder("node", "data_dir", "nats") {
		if err := events.ValidateConfig(d.eventsConfig()); err != nil {
			for _, line := range eventsProblems(err) {
				p.add("nats", "nats: %s", line)
			}
		}
	}
	if !p.hasProblemUnder("http.auth") {
		checkAuth(d, p)
	}
	if !p.hasProblemUnder("ari") {
		// newAsterisk builds the AMI and ARI clients without connecting.
		if err := d.newAsterisk(); err != nil {
			p.add("ari", "%v", err)
		}
	}
}

// checkAuth reads the JWT public key and checks it as httpapi does.
func checkAuth(d *Daemon, p *problems) {
	jwt := d.cfg.HTTP.Auth.JWT
	key := "http.auth.jwt"
	if jwt.PublicKeyFile != "" && jwt.Algorithm != "" {
		key = "http.auth.jwt.public_key_file"
		if _, err := os.ReadFile(jwt.PublicKeyFile); err != nil {
			p.add(key, "http.auth.jwt.public_key_file %q cannot be read: %v: set it to the PEM public key file", jwt.PublicKeyFile, pathErrorCause(err))
			return
		}
	}
	auth, err := d.authConfig()
	if err == nil {
		err = httpapi.ValidateAuth(auth)
	}
	if err != nil {
		p.add(key, "%s: %v", key, err)
	}
}

// eventsProblems returns the lines of an events configuration error
// without the events.ErrInvalidConfig prefix.
func eventsProblems(err error) []string {
	var lines []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		line = strings.TrimPrefix(line, events.ErrInvalidConfig.Error()+": ")
		if line != "" && line != events.ErrInvalidConfig.Error() {
			lines = append(lines, line)
		}
	}
	return lines
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

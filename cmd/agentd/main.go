// Command agentd runs the agent session daemon beside Asterisk.
//
//	agentd [run] [-config FILE]          run the daemon
//	agentd check-config [-config FILE]   validate the configuration and the directory
//	agentd hash-password                 print a bcrypt hash of a password read from stdin
//	agentd events [flags]                print agent events as they are published
//	agentd version                       print version information
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/contactcenter/agentd/daemon"
	"github.com/contactcenter/agentd/httpapi"
)

// defaultConfigPath is where packages install the configuration.
const defaultConfigPath = "/etc/agentd/agentd.yaml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = runDaemon(args, stderr)
	case "check-config":
		err = checkConfig(args, stdout, stderr)
	case "hash-password":
		err = hashPassword(stdin, stdout)
	case "events":
		err = tailEvents(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, daemon.Version())
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
	default:
		err = fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFlags):
		return 2 // the flag package already printed the problem and the usage
	case err != nil:
		fmt.Fprintln(stderr, "agentd:", err)
		return 1
	}
	return 0
}

// errFlags marks a command-line error the flag package already printed.
var errFlags = errors.New("invalid flags")

// parseFlags parses args, printing problems and usage to stderr.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	switch err := fs.Parse(args); {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return err
	default:
		return errFlags
	}
}

const usage = `usage:
  agentd [run] [-config FILE]          run the daemon
  agentd check-config [-config FILE]   validate the configuration and the directory
  agentd hash-password                 print a bcrypt hash of a password read from stdin
  agentd events [-config FILE] [-agent ID] [-all]
                                       print agent events as they are published
  agentd version                       print version information`

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", defaultConfigPath, "configuration file")
}

// runDaemon runs until SIGINT or SIGTERM; SIGHUP reloads.
func runDaemon(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := configFlag(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	cfg, err := daemon.LoadConfig(*path, os.Environ())
	if err != nil {
		return err
	}
	logger, level := daemon.NewLogger(stderr, cfg.Log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	return daemon.Run(ctx, daemon.Options{ConfigPath: *path, Config: cfg, Logger: logger, Level: level, Reload: hup})
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	path := configFlag(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := daemon.CheckConfig(*path, os.Environ(), stdout); err != nil {
		return errors.New("configuration is invalid")
	}
	return nil
}

func hashPassword(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return errors.New("empty password: write the password on standard input")
	}
	hash, err := httpapi.HashPassword(password)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, hash)
	return nil
}

func tailEvents(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	path := configFlag(fs)
	agentID := fs.String("agent", "", "only events of this agent id")
	all := fs.Bool("all", false, "replay the stored events first, then follow")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return daemon.TailEvents(ctx, *path, os.Environ(), *agentID, *all, stdout)
}

// Command agentd runs the agent session daemon beside Asterisk.
//
//	agentd [run] [-config FILE]          run the daemon
//	agentd check-config [-config FILE]   validate the configuration and the directory
//	agentd hash-password                 print a bcrypt hash of a password read from stdin
//	agentd events [flags]                print agent events as they are published
//	agentd version                       print version information
//	agentd help [COMMAND]                print the usage, and the flags of COMMAND
//
// -h or --help after any command prints the usage and that command's flags.
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

// defaultConfigPath is the configuration file that packages install.
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
		err = runDaemon(args, stdout, stderr)
	case "check-config":
		err = checkConfig(args, stdout, stderr)
	case "hash-password":
		err = hashPassword(args, stdin, stdout, stderr)
	case "events":
		err = tailEvents(args, stdout, stderr)
	case "version":
		err = printVersion(args, stdout, stderr)
	case "help":
		return help(args, stdin, stdout, stderr)
	default:
		err = fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFlags):
		return 2 // the problem and the usage are printed already
	case err != nil:
		fmt.Fprintln(stderr, "agentd:", err)
		return 1
	}
	return 0
}

// help prints the usage, and with a command name the flags of that
// command, as "agentd COMMAND -h" does.
func help(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	if args[0] == "help" {
		return help(nil, stdin, stdout, stderr)
	}
	return run([]string{args[0], "-h"}, stdin, stdout, stderr)
}

// errFlags marks a command-line error that parseFlags printed already.
var errFlags = errors.New("invalid flags")

// parseFlags parses the flags of a command. For -h or --help it prints the
// usage and the command's flags to stdout and returns flag.ErrHelp. For a
// flag error or an argument that is not a flag, it prints the problem and
// the same help to stderr and returns errFlags.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(stderr) // the flag package prints the problem there
	fs.Usage = func() {} // printHelp runs below, with the stream that fits
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(stdout, fs)
		return err
	case err != nil:
		printHelp(stderr, fs)
		return errFlags
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "unexpected argument %q: agentd %s takes only flags\n", fs.Arg(0), fs.Name())
		printHelp(stderr, fs)
		return errFlags
	}
	return nil
}

// printHelp prints the usage of every command and the flags of one.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, usage)
	fmt.Fprintf(w, "\nflags of agentd %s:\n", fs.Name())
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if !hasFlags {
		fmt.Fprintln(w, "  none")
		return
	}
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

const usage = `usage:
  agentd [run] [-config FILE]          run the daemon
  agentd check-config [-config FILE]   validate the configuration and the directory
  agentd hash-password                 print a bcrypt hash of a password read from stdin
  agentd events [-config FILE] [-agent ID] [-all]
                                       print agent events as they are published
  agentd version                       print version information
  agentd help [COMMAND]                print this usage, and the flags of COMMAND

Run a command with -h or --help to print its flags.`

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", defaultConfigPath, "read the configuration from `FILE`")
}

// runDaemon runs until SIGINT or SIGTERM; SIGHUP reloads.
func runDaemon(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := configFlag(fs)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
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
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if err := daemon.CheckConfig(*path, os.Environ(), stdout); err != nil {
		return errors.New("configuration is invalid")
	}
	return nil
}

func printVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, daemon.Version())
	return nil
}

func hashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
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
	agentID := fs.String("agent", "", "print only the events of the agent with this `ID`")
	all := fs.Bool("all", false, "replay the stored events first, then follow")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return daemon.TailEvents(ctx, *path, os.Environ(), *agentID, *all, stdout)
}

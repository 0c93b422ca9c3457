package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/contactcenter/agentd/events"
)

// eventsConfig maps the nats section onto the events package.
func (d *Daemon) eventsConfig() events.Config {
	n := d.cfg.NATS
	cfg := events.Config{
		Node:             d.cfg.Node,
		DataDir:          d.cfg.DataDir,
		Conn:             connConfig(n),
		SubjectPrefix:    n.SubjectPrefix,
		Stream:           n.Stream,
		StreamMaxAge:     n.StreamMaxAge,
		StreamReplicas:   n.StreamReplicas,
		Bucket:           n.Bucket,
		BucketReplicas:   n.BucketReplicas,
		OutboxMaxEntries: n.OutboxMaxEntries,
		OutboxMaxBytes:   n.OutboxMaxBytes,
	}
	if n.Embedded.Listen == "none" {
		cfg.Embedded.DontListen = true
	} else if host, port, err := net.SplitHostPort(n.Embedded.Listen); err == nil {
		cfg.Embedded.Host = host
		cfg.Embedded.Port, _ = strconv.Atoi(port) // validated by LoadConfig
		if cfg.Embedded.Port == 0 {
			cfg.Embedded.Port = -1 // port 0 asks for a free port
		}
	}
	return cfg
}

func connConfig(n NATSConfig) events.ConnConfig {
	return events.ConnConfig{
		URLs:            n.URLs,
		User:            n.User,
		Password:        n.Password,
		Token:           n.Token,
		NKeySeedFile:    n.NKeySeedFile,
		CredentialsFile: n.CredentialsFile,
		TLSCAFile:       n.TLSCAFile,
		TLSCertFile:     n.TLSCertFile,
		TLSKeyFile:      n.TLSKeyFile,
	}
}

// TailEvents prints agent events from the NATS server that the
// configuration at path names: the embedded server's listen address or
// the external URLs.
func TailEvents(ctx context.Context, path string, environ []string, agentID string, fromStart bool, w io.Writer) error {
	cfg, err := LoadConfig(path, environ)
	if err != nil {
		return err
	}
	conn := connConfig(cfg.NATS)
	if len(conn.URLs) == 0 {
		if cfg.NATS.Embedded.Listen == "none" {
			return fmt.Errorf("%s: nats.embedded.listen is none, so no other process can read the events; set an address such as 127.0.0.1:4222", path)
		}
		conn.URLs = []string{"nats://" + cfg.NATS.Embedded.Listen}
	}
	return events.Tail(ctx, events.TailConfig{
		Conn:          conn,
		SubjectPrefix: cfg.NATS.SubjectPrefix,
		Stream:        cfg.NATS.Stream,
		AgentID:       agentID,
		FromStart:     fromStart,
	}, w)
}

func echoHandler(h http.HandlerFunc) echo.HandlerFunc {
	return echo.WrapHandler(h)
}

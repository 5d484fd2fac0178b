// Command trialhub runs the TrialHub development stack and mints dev tokens.
//
//	trialhub dev   [--addr :8080] [--data data] [--web web-client/dist]
//	trialhub token --role analyst|patient|investigator|admin|service [--site ID]... [--trial ID]... [--subject S] [--ttl 12h] [--data data]
//	trialhub fakevendor [--addr 127.0.0.1:8090] [--api-key KEY]
//
// Flags default from the environment: TRIALHUB_ADDR, TRIALHUB_DATA and TRIALHUB_WEB;
// fakevendor's from TRIALHUB_FAKEVENDOR_ADDR and TRIALHUB_FAKEVENDOR_API_KEY.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/trialhub/trialhub/services/platform/fakevendor"
	"github.com/trialhub/trialhub/services/stack"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "dev":
		err = dev(os.Args[2:])
	case "token":
		err = token(os.Args[2:])
	case "fakevendor":
		err = fakeVendor(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trialhub:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  trialhub dev   [--addr HOST:PORT] [--data DIR] [--web DIR]  run every service in one process
  trialhub token --role ROLE [--site ID]... [--trial ID]... [--data DIR]  print a token signed with the stack's keys (last line)
  trialhub fakevendor [--addr HOST:PORT] [--api-key KEY]  run the fake SMS and push vendor`)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func dev(args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	addr := fs.String("addr", env("TRIALHUB_ADDR", "127.0.0.1:8080"), "listen address `host:port` (env TRIALHUB_ADDR)")
	data := fs.String("data", env("TRIALHUB_DATA", "data"), "data `folder` for the databases and the patient master key (env TRIALHUB_DATA)")
	web := fs.String("web", env("TRIALHUB_WEB", "web-client/dist"), "`folder` of the built browser app, served at / (env TRIALHUB_WEB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return stack.Dev(ctx, stack.Config{Addr: *addr, Data: *data, Web: *web, Out: os.Stdout})
}

type sites []string

func (s *sites) String() string     { return strings.Join(*s, ",") }
func (s *sites) Set(v string) error { *s = append(*s, v); return nil }

func token(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	role := fs.String("role", "", "role: patient, investigator, analyst, admin or service")
	data := fs.String("data", env("TRIALHUB_DATA", "data"), "data `folder` of the stack whose patient service's keys sign (env TRIALHUB_DATA)")
	subject := fs.String("subject", "", "token subject (default: a new subject_uuid for patients, dev-ROLE otherwise)")
	ttl := fs.Duration("ttl", 12*time.Hour, "token lifetime")
	var siteIDs, trialIDs sites
	fs.Var(&siteIDs, "site", "site `id` an investigator may act on (repeatable)")
	fs.Var(&trialIDs, "trial", "trial `id` an investigator or analyst may act on (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, err := stack.Token(stack.TokenRequest{Data: *data, Role: *role, Subject: *subject, Sites: siteIDs, Trials: trialIDs, TTL: *ttl})
	if err != nil {
		return err
	}
	fmt.Println(t)
	return nil
}

func fakeVendor(args []string) error {
	fs := flag.NewFlagSet("fakevendor", flag.ContinueOnError)
	addr := fs.String("addr", env("TRIALHUB_FAKEVENDOR_ADDR", "127.0.0.1:8090"), "listen address `host:port` (env TRIALHUB_FAKEVENDOR_ADDR)")
	key := fs.String("api-key", env("TRIALHUB_FAKEVENDOR_API_KEY", ""), "bearer API `key` every request must carry; none if empty (env TRIALHUB_FAKEVENDOR_API_KEY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	curl := "curl -s"
	if *key != "" {
		curl += ` -H "Authorization: Bearer ` + *key + `"`
	}
	fmt.Printf(`fake vendor at %[1]s
  send:    %[2]s -H "Idempotency-Key: k1" -d '{"to":"+4512345678","text":"hello"}' %[1]s/sms
  inbox:   %[2]s '%[1]s/inbox?channel=sms&to=%%2B4512345678'
  faults:  %[2]s %[1]s/faults
           %[2]s -d '{"mode":"slow","delay_ms":800}' %[1]s/faults
           %[2]s -d '{"mode":"too_many_requests","retry_after_ms":2000}' %[1]s/faults
           %[2]s -d '{"mode":"healthy"}' %[1]s/faults
           modes: healthy, slow (delay_ms), hang, server_error (status), too_many_requests (retry_after_ms), flapping (flap_every, status)
`, url, curl)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	v := fakevendor.New(fakevendor.WithAPIKey(*key), fakevendor.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	return v.Serve(ctx, ln)
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/heraldrt/herald/internal/auth"
)

// secretEnv is the server's auth.hmac_secret option in environment form,
// so that one variable serves both the server and this command.
const secretEnv = "HERALD_AUTH__HMAC_SECRET"

const tokenIntro = `Usage: herald token [flags]

Mints a JWT signed with an HMAC secret, for development and tests. A
server whose auth.hmac_secret is the same secret accepts it.

By default it is a connection token: a client presents it to connect as
--user, and the server subscribes it to the --channels. With --channel it
is a subscription token instead: it lets --user subscribe to that one
channel of a private namespace.

The secret is --secret, or else the environment variable
HERALD_AUTH__HMAC_SECRET, which the server reads too; it must be at least
32 bytes. Prefer the variable: other users can see flags in the process
list.

Examples:

  export HERALD_AUTH__HMAC_SECRET=$(openssl rand -hex 32)
  herald token --user alice
  herald token --user alice --ttl 24h --channels news,user:alice --info '{"name":"Alice"}'
  herald token --user alice --channel private:reports --ttl 10m

Output: the token and a newline.

Exit status: 0 printed; 2 usage error (flags, a missing or short secret,
--info that is not JSON, a bad channel name).
`

// token mints a connection or subscription token.
func token(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token")
	user := fs.String("user", "", `user ID, the "sub" claim; empty for an anonymous client`)
	secret := fs.String("secret", "", "HMAC secret, at least 32 bytes (env "+secretEnv+")")
	ttl := fs.Duration("ttl", time.Hour, "lifetime, the \"exp\" claim; 0 for a token that never expires")
	channels := fs.StringSlice("channels", nil, "comma-separated channels the server subscribes the client to on connect")
	channel := fs.String("channel", "", "mint a subscription token for this channel")
	info := fs.String("info", "", `JSON value shown to others as the client's info, e.g. '{"name":"Alice"}'`)
	alg := fs.String("alg", "HS256", "signing algorithm: HS256, HS384 or HS512")
	audience := fs.String("audience", "", `"aud" claim, for a server with auth.audience set`)
	issuer := fs.String("issuer", "", `"iss" claim, for a server with auth.issuer set`)
	if code, done := parseFlags(fs, tokenIntro, args, stdout, stderr); done {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "herald token: "+format+"\n", a...)
		return exitUsage
	}
	key := *secret
	if !fs.Changed("secret") {
		key = os.Getenv(secretEnv)
	}
	if key == "" {
		return fail("no secret: give --secret or set %s", secretEnv)
	}
	if *info != "" && !json.Valid([]byte(*info)) {
		return fail("--info is not JSON: %q", *info)
	}
	tok, err := auth.Mint(auth.MintOptions{
		Secret:    []byte(key),
		Algorithm: *alg,
		UserID:    *user,
		TTL:       *ttl,
		Channels:  *channels,
		Channel:   *channel,
		Info:      json.RawMessage(*info),
		Audience:  *audience,
		Issuer:    *issuer,
	})
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(stdout, tok)
	return exitOK
}

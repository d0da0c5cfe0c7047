// Package auth verifies the JSON Web Tokens Herald's clients present, and
// mints HMAC-signed ones for development.
//
// A connection token says who a client is: "sub" is its user ("" or absent
// for an anonymous client), "info" any JSON value shown to others (in
// presence, for instance), "channels" the channels the server subscribes it
// to on connect, "exp" when the connection must refresh its token or end.
// A subscription token lets one user into one channel of a private
// namespace: it carries "channel", and its "sub" must be the subscribing
// client's user. Only the presence of "channel" tells the two kinds apart,
// so one can never pass for the other.
//
// Keys come from [Config]: an HMAC secret, a PEM public key, a JWKS
// endpoint, or a secret together with one of the others. The algorithms a
// [Verifier] accepts are those its keys can check, and each key verifies
// only its own algorithm family, so neither "alg": "none" nor algorithm
// confusion (an HS256 token keyed with the bytes of an RSA public key) can
// get a token through.
//
// Every failure is a *protocol.Error a client may be shown:
// protocol.ErrTokenExpired for a token whose only fault is its age, so the
// client knows a fresh token will do, and protocol.ErrUnauthorized with a
// short reason otherwise. No message repeats the token.
package auth

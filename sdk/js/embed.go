// Package js holds the browser bundle of Herald's TypeScript SDK, so that
// the server can serve it at a stable path (/sdk/herald.min.js) and a page
// needs only one script tag. The bundle is built from src/ by
// `npm run build` and committed; the test command rebuilds it and fails if
// the committed bytes differ.
package js

import "embed"

// Bundle holds dist/herald.min.js and its source map.
//
//go:embed dist/herald.min.js dist/herald.min.js.map
var Bundle embed.FS

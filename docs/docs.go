// Package docs holds the HTTP API's OpenAPI document and its interactive
// reference, both embedded in the binary, and the handler that serves them.
// The reference is Swagger UI (the npm package swagger-ui-dist, copied under
// ui/ by scripts/update-swagger-ui.sh) and loads nothing from outside the
// process, so it works offline.
package docs

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// OpenAPI is docs/openapi.yaml: the OpenAPI 3.0 document of the HTTP API,
// which every answer of the API conforms to.
//
//go:embed openapi.yaml
var OpenAPI []byte

//go:embed ui
var uiFiles embed.FS

// UI holds the reference's static files at its root: index.html, the
// initializer that points Swagger UI at /openapi.yaml, and Swagger UI itself.
var UI fs.FS = mustSub(uiFiles, "ui")

// The paths Handler serves.
const (
	SpecPath = "/openapi.yaml"
	DocsPath = "/docs"
)

// SpecContentType is the media type of OpenAPI (RFC 9512).
const SpecContentType = "application/yaml"

// contentTypes are the media types of the files UI serves, by extension;
// files of other extensions are not served. A fixed table, not
// mime.TypeByExtension, whose answers depend on the machine's mime.types.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".png":  "image/png",
	".txt":  "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8", // LICENSE, NOTICE
}

// contentSecurityPolicy lets the reference load and call this server only,
// whatever Swagger UI might try. Styles may be inline: Swagger UI sets them
// on elements. Images may be data: URIs (the CSS's icons) or blob: URLs (an
// image answer shown by "Try it out").
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is a file ready to serve.
type asset struct {
	name        string
	data        []byte
	contentType string
	etag        string
}

func newAsset(name string, data []byte, contentType string) asset {
	sum := sha256.Sum256(data)
	return asset{name: name, data: data, contentType: contentType,
		etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}
}

// assets are the spec and the UI's files, by the path they are served at,
// built once: hashing the 2 MB of Swagger UI is not worth doing at start-up
// of a process that never serves them.
var assets = sync.OnceValue(func() map[string]asset {
	m := map[string]asset{SpecPath: newAsset("openapi.yaml", OpenAPI, SpecContentType)}
	err := fs.WalkDir(UI, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		data, err := fs.ReadFile(UI, name)
		if err != nil {
			return err
		}
		m[DocsPath+"/"+name] = newAsset(name, data, ct)
		return nil
	})
	if err != nil {
		panic("docs: reading the embedded files: " + err.Error()) // cannot happen: they are compiled in
	}
	m[DocsPath+"/"] = m[DocsPath+"/index.html"]
	return m
})

// Handler serves, for GET and HEAD:
//
//	/openapi.yaml  the document (Content-Type application/yaml)
//	/docs          a redirect to /docs/
//	/docs/         the reference page; /docs/{file} its files
//
// Answers carry an ETag and Cache-Control: no-cache, so a browser revalidates
// and sees a new version at once; the reference's files carry a
// Content-Security-Policy that allows nothing from outside this server.
//
// A path it does not serve goes to notFound (http.NotFound when nil), so an
// API that mounts Handler on "GET /openapi.yaml", "GET /docs" and
// "GET /docs/" answers an unknown file with its own error body. Another
// method is answered 405 with Allow: GET, HEAD.
func Handler(notFound http.Handler) http.Handler {
	if notFound == nil {
		notFound = http.NotFoundHandler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p != SpecPath && p != DocsPath && !strings.HasPrefix(p, DocsPath+"/") {
			notFound.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if p == DocsPath {
			// Relative, as http.FileServer does, so the page also works behind a
			// proxy that strips a prefix; its own links are relative too.
			w.Header().Set("Location", path.Base(DocsPath)+"/")
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		a, ok := assets()[p]
		if !ok {
			notFound.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		if p != SpecPath {
			h.Set("Content-Security-Policy", contentSecurityPolicy)
		}
		// ServeContent answers If-None-Match, Range and HEAD.
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
	})
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
